"""RMU (Li et al. 2024, WMDP): steer hidden states on forget rows towards a random direction.

loss = MSE(h_l(forget), c * u) + alpha * MSE(h_l(retain), h_l_ref(retain))
h_l is the output of decoder layer `rmu_layer` (captured by a forward hook on that one layer), u a fixed
random unit vector, c `rmu_steering_coeff`, alpha `rmu_alpha`; the reference is the adapter disabled under
LoRA. Only layers l-2..l train (their LoRA adapters, or their weights under full/freeze fine-tuning).
Positions: the answer tokens of a row (labels set), as RMU implementations for chat data do; the system
prompt and image tokens a forget row shares with a retain row showing the same image are left alone.
Each MSE is a mean over a row's answer positions and the hidden units, then over rows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch

from .. import losses
from ..params import non_negative, positive
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer

TRAINED_LAYERS_BELOW = 2  # RMU updates the steered layer and the two below it
_LANGUAGE_LAYER = re.compile(r"language_model\.(?:model\.)?layers\.(\d+)$")


@register_method("rmu")
class RMUTrainer(UnlearningTrainer):
    reference_row_sets = ("retain",)
    params = (
        non_negative(
            "rmu_layer",
            int,
            None,
            "decoder layer whose output is steered; it and the two layers below it train (default: the middle layer)",
        ),
        positive("rmu_steering_coeff", float, 6.5, "norm c of the random target direction on forget rows"),
        non_negative(
            "rmu_alpha", float, 1200.0, "weight of keeping retain rows' hidden states at the reference's (WMDP: 1200)"
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        text_config = self.model.config.get_text_config()
        num_layers = text_config.num_hidden_layers
        layer = self.finetuning_args.rmu_layer
        self.steered_layer = num_layers // 2 if layer is None else layer
        if self.steered_layer >= num_layers:
            raise ValueError(f"rmu_layer {self.steered_layer} does not exist: the model has {num_layers} layers")
        trained = set(range(max(0, self.steered_layer - TRAINED_LAYERS_BELOW), self.steered_layer + 1))
        if not freeze_all_but_layers(self.model, trained):
            raise ValueError(f"RMU: no trainable parameters in language-model layers {sorted(trained)}")
        generator = torch.Generator().manual_seed(self.args.seed)
        direction = torch.rand(text_config.hidden_size, generator=generator)  # uniform in [0, 1), as in WMDP
        coeff = self.finetuning_args.rmu_steering_coeff
        self.control_vector = (coeff * direction / direction.norm()).to(self.args.device)

    def forward_sets(self, model: torch.nn.Module, inputs: dict[str, Any]) -> StepOutputs:
        with capture_output(decoder_layer(model, self.steered_layer)) as outputs:
            batch = super().forward_sets(model, inputs)
        row_sets = batch.row_sets  # in stacking order
        if len(outputs) == len(row_sets):  # one pass per set
            batch.activations.update(zip(row_sets, outputs, strict=True))
        else:  # one pass over the stacked sets
            sizes = [batch.logits[row_set].shape[0] for row_set in row_sets]
            batch.activations.update(zip(row_sets, outputs[0].split(sizes), strict=True))
        return batch

    def method_loss(self, batch: StepOutputs):
        forget_answer = batch.labels["forget"] != losses.IGNORE_INDEX
        target = self.control_vector.to(batch.activations["forget"].dtype)
        forget = losses.masked_mse(batch.activations["forget"], target, forget_answer)
        reference_model = self.ref_model if self.ref_model is not None else self.model_wrapped
        with capture_output(decoder_layer(reference_model, self.steered_layer)) as reference_hidden:
            _, reference_inputs = self.reference_outputs(batch, "retain")
        reference_answer = reference_inputs["labels"] != losses.IGNORE_INDEX
        retain = losses.masked_mse(
            batch.activations["retain"],
            reference_hidden[0][reference_answer],
            batch.labels["retain"] != losses.IGNORE_INDEX,
        )
        terms = {
            "rmu_forget": forget.detach(),
            "rmu_retain": retain.detach(),
            "forget_nll": batch.nll("forget").detach(),
        }
        return forget + self.finetuning_args.rmu_alpha * retain, terms


def decoder_layer(model: torch.nn.Module, index: int) -> torch.nn.Module:
    """Language-model decoder layer ``index`` of a (possibly wrapped) multimodal model."""
    for name, module in model.named_modules():
        match = _LANGUAGE_LAYER.search(name)
        if match and int(match.group(1)) == index:
            return module
    raise ValueError(f"RMU: no language-model decoder layer {index} in {type(model).__name__}")


@contextlib.contextmanager
def capture_output(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect ``module``'s output hidden states of every forward call made inside the block.

    The hook is gone when the block ends, so a gradient-checkpointing recomputation in backward adds nothing.
    """
    outputs: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def freeze_all_but_layers(model: torch.nn.Module, layers: set[int]) -> list[str]:
    """Keep trainable only the parameters inside the given language-model layers; return their names."""
    kept = []
    for name, param in model.named_parameters():
        match = re.search(r"language_model\.(?:model\.)?layers\.(\d+)\.", name)
        keep = param.requires_grad and match is not None and int(match.group(1)) in layers
        param.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
