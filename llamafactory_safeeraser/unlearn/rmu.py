"""RMU (Li et al. 2024, WMDP): steer hidden states on forget rows towards a random direction.

loss = MSE(h_l(forget), c * u) + alpha * MSE(h_l(retain), h_l_ref(retain))
h_l is the output of decoder layer `rmu_layer`, u a fixed random unit vector, c `rmu_steering_coeff`,
alpha `rmu_alpha`; the reference is the adapter disabled under LoRA. Only layers l-2..l train (their
LoRA adapters, or their weights under full/freeze fine-tuning); every other parameter is frozen.
Positions: the answer tokens of a row (labels set), as RMU implementations for chat data do; the system
prompt and image tokens a forget row shares with a retain row showing the same image are left alone.
Each MSE is a mean over a row's answer positions and the hidden units, then over rows.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from . import losses
from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer

DEFAULT_STEERING_COEFF = 6.5
DEFAULT_ALPHA = 1200.0  # WMDP (Li et al. 2024) for 7B models
TRAINED_LAYERS_BELOW = 2  # RMU updates the steered layer and the two below it
_LANGUAGE_LAYER = re.compile(r"language_model\.(?:model\.)?layers\.(\d+)\.")


@register_method("rmu")
class RMUTrainer(UnlearningTrainer):
    reference_groups = ("retain",)
    needs_hidden_states = True
    method_keys = frozenset({"rmu_layer", "rmu_steering_coeff", "rmu_alpha"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        text_config = self.model.config.get_text_config()
        num_layers = text_config.num_hidden_layers
        layer = self.finetuning_args.rmu_layer
        self.steered_layer = num_layers // 2 if layer is None else layer
        if self.steered_layer >= num_layers:
            raise ValueError(f"rmu_layer {self.steered_layer} does not exist: the model has {num_layers} layers")
        trained = set(range(max(0, self.steered_layer - TRAINED_LAYERS_BELOW), self.steered_layer + 1))
        kept = freeze_all_but_layers(self.model, trained)
        if not kept:
            raise ValueError(f"RMU: no trainable parameters in language-model layers {sorted(trained)}")
        hidden_size = text_config.hidden_size
        generator = torch.Generator().manual_seed(self.args.seed)
        direction = torch.rand(hidden_size, generator=generator)  # uniform in [0, 1), as in WMDP
        coeff = self.finetuning_args.rmu_steering_coeff or DEFAULT_STEERING_COEFF
        self.control_vector = (coeff * direction / direction.norm()).to(self.args.device)

    def method_loss(self, batch: UnlearningBatch):
        index = self.steered_layer + 1  # hidden_states[0] is the embedding output
        alpha = DEFAULT_ALPHA if self.finetuning_args.rmu_alpha is None else self.finetuning_args.rmu_alpha
        forget = losses.masked_mse(
            batch.hidden_states["forget"][index],
            self.control_vector.to(batch.logits["forget"].dtype),
            batch.labels["forget"] != losses.IGNORE_INDEX,
        )
        reference, reference_inputs = batch.reference_outputs("retain", output_hidden_states=True)
        reference_hidden = reference.hidden_states[index][reference_inputs["labels"] != losses.IGNORE_INDEX]
        retain = losses.masked_mse(
            batch.hidden_states["retain"][index], reference_hidden, batch.labels["retain"] != losses.IGNORE_INDEX
        )
        terms = {
            "rmu_forget": forget.detach(),
            "rmu_retain": retain.detach(),
            "forget_nll": batch.nll("forget").detach(),
        }
        return forget + alpha * retain, terms


def freeze_all_but_layers(model: torch.nn.Module, layers: set[int]) -> list[str]:
    """Keep trainable only the parameters inside the given language-model layers; return their names."""
    kept = []
    for name, param in model.named_parameters():
        match = _LANGUAGE_LAYER.search(name)
        keep = param.requires_grad and match is not None and int(match.group(1)) in layers
        param.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
