"""Base trainer of every unlearning method: the forward pass, the reference model, shared terms, logging.

A method is a small subclass that declares what it needs (class attributes, and its YAML keys in
``params``) and implements :meth:`UnlearningTrainer.method_loss`. Everything shared lives here:

- :meth:`~UnlearningTrainer.forward_sets` runs the policy over a step's rows, by default in ONE forward
  pass over the stacked forget / refusal / retain / PD rows, and returns the :class:`StepOutputs`
  view of its outputs per set; a method that needs more of the pass (RMU: one layer's output) overrides it;
- the reference model (KL, NPO, IdkDPO, RMU) is the same weights with the LoRA adapter disabled, or, for
  full/freeze fine-tuning, LLaMA-Factory's reference copy; per-row reference log-probs are cached;
- ``retain_weight * NLL(retain)`` (methods declaring ``retain_weight``) and prompt decouple (PD),
  ``pd_weight * NLL(pd)``, are added to any method's loss, user methods included;
- the non-finite-loss stop and per-term loss logging. Every term is a mean over rows (see ``losses``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, ClassVar

import torch

from ..integration import llamafactory as lf
from ..settings import Setting
from . import losses
from .collator import ROW_SETS
from .guard import ForgetNLLGuard
from .outputs import StepOutputs

logger = lf.get_logger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


class UnlearningTrainer(lf.CustomSeq2SeqTrainer):
    """Subclass and implement :meth:`method_loss`; register with ``@register_method(name)``."""

    method_name: ClassVar[str] = ""
    # the method's own YAML keys (see params.py); their resolved values are on self.finetuning_args
    params: ClassVar[tuple[Setting, ...]] = ()
    # which forget-prompt rows the method trains on: harmful answers and/or refusals (PO, IdkDPO)
    uses_forget_rows: ClassVar[bool] = True
    uses_refusal_rows: ClassVar[bool] = False
    # sets whose reference-model outputs the loss needs (KL: retain, NPO: forget)
    reference_row_sets: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def uses_retain_rows(cls, args: Any) -> bool:
        return bool(getattr(args, "retain_weight", None)) or "retain" in cls.reference_row_sets

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unlearning = self.finetuning_args
        self.retain_weight = getattr(unlearning, "retain_weight", None) or 0.0
        self.pd_weight = unlearning.effective_pd_weight
        # compute_loss returns a mean over its rows: the Trainer must divide by the accumulation steps
        # (it would not for a model whose forward takes loss kwargs)
        self.model_accepts_loss_kwargs = False
        # vocabulary from the config, not the output-embedding weight: ZeRO-3 partitions weights to shape [0]
        self.guard = ForgetNLLGuard(
            self,
            unlearning.guard_action,
            getattr(unlearning, "forget_nll_ceiling", None),
            self.model.config.get_text_config().vocab_size,
        )
        self.add_callback(self.guard)
        # (set, row id) -> log pi_ref(y|x); the reference never changes, so each row is computed once
        self.reference_logp_cache: dict[tuple[str, int], float] | None = (
            {} if unlearning.cache_reference_logps else None
        )
        self._term_sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._term_counts: dict[str, int] = defaultdict(int)
        self.logged_terms: set[str] = set()

    @property
    def adds_retain_nll(self) -> bool:
        """Whether the base class adds ``retain_weight * NLL(retain)``; False for a method that folds the
        retain rows into its own term (PO's joint reduction)."""
        return True

    # ----- what a method implements ---------------------------------------------------------
    def method_loss(self, batch: StepOutputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the method's loss and the named terms to log (detached scalars or tensors)."""
        raise NotImplementedError

    # ----- the forward pass (a method may override it, as LLaMA-Factory's DPO `concatenated_forward`) ----
    def forward_sets(self, model: torch.nn.Module, inputs: dict[str, Any]) -> StepOutputs:
        """Run the policy over the step's rows: one pass over the stacked sets, or one per set."""
        row_ids = inputs.pop("row_ids")
        sizes = dict(zip(ROW_SETS, inputs.pop("row_set_sizes").tolist(), strict=True))
        reference_inputs: dict[str, dict] = inputs.pop("reference_inputs", {})
        row_set_inputs = inputs.pop("row_set_inputs", None)
        logits, labels, masks = {}, {}, {}
        if row_set_inputs is None:  # fused: one forward pass over all rows, split afterwards
            stacked_labels = inputs.pop("labels")
            outputs = model(**inputs)
            start = 0
            for row_set in ROW_SETS:
                if sizes[row_set]:
                    rows = slice(start, start + sizes[row_set])
                    logits[row_set], labels[row_set] = outputs.logits[rows], stacked_labels[rows]
                    masks[row_set] = inputs["attention_mask"][rows]
                    start += sizes[row_set]
        else:  # one forward pass per set (each padded to its own length)
            for row_set, batch in row_set_inputs.items():
                labels[row_set] = batch.pop("labels")
                logits[row_set], masks[row_set] = model(**batch).logits, batch["attention_mask"]
                reference_inputs.setdefault(row_set, dict(batch, labels=labels[row_set]))
        return StepOutputs(row_ids, logits, labels, masks, reference_inputs)

    # ----- the reference model -------------------------------------------------------------------
    @contextlib.contextmanager
    def reference_model_context(self, model: torch.nn.Module):
        """Yield the frozen starting model: a reference copy, or the same weights with LoRA disabled."""
        if self.ref_model is not None:
            yield self.ref_model
            return
        unwrapped = self.accelerator.unwrap_model(model)
        with unwrapped.disable_adapter():
            yield model

    def reference_outputs(self, batch: StepOutputs, row_set: str) -> tuple[Any, dict[str, Any]]:
        """The reference model's outputs for the rows of ``row_set`` (no gradient), and the inputs it saw."""
        inputs = dict(batch.reference_inputs[row_set])
        labels = inputs.pop("labels")
        with torch.no_grad(), self.reference_model_context(self.model_wrapped) as reference:
            outputs = reference(**inputs)
        return outputs, {**inputs, "labels": labels}

    def reference_sequence_logps(self, batch: StepOutputs, row_set: str) -> torch.Tensor:
        """log pi_ref(y|x) per row of ``row_set``, from the cache when allowed."""
        cache = self.reference_logp_cache
        keys = [(row_set, row) for row in batch.row_ids.tolist()]
        missing = cache is None or any(key not in cache for key in keys)
        if self.any_process(missing):  # all ranks must run the same forwards (ZeRO-3)
            outputs, inputs = self.reference_outputs(batch, row_set)
            values = losses.sequence_logps(outputs.logits, inputs["labels"])
            if cache is not None:
                cache.update(zip(keys, values.tolist(), strict=True))
            return values
        return torch.tensor([cache[key] for key in keys], device=batch.row_ids.device, dtype=torch.float32)

    def any_process(self, flag: bool) -> bool:
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor(float(flag), device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    # ----- shared helpers for methods ----------------------------------------------------------
    def forget_ascent(self, batch: StepOutputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-NLL(forget) under the (opt-in) guard; the building block of GA, GD and KL."""
        return self.guard.ascent(*batch.token_logps("forget"))

    # ----- Trainer hooks ----------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = self.forward_sets(model, inputs)
        loss, terms = self.method_loss(batch)
        # The two terms any method can carry, added here so that no method file repeats them.
        if self.adds_retain_nll and self.retain_weight and batch.has("retain"):
            retain_nll = batch.nll("retain")
            loss = loss + self.retain_weight * retain_nll
            terms["retain_nll"] = retain_nll.detach()
        if self.pd_weight and batch.has("pd"):
            pd_nll = batch.nll("pd")
            loss = loss + self.pd_weight * pd_nll
            terms["pd_nll"] = pd_nll.detach()
        if not torch.isfinite(loss).item():
            raise NonFiniteLossError(
                f"unlearning loss is {loss.item()} at step {self.state.global_step} "
                f"(terms: {', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); stopping before the update. "
                f"Checkpoints already in {self.args.output_dir} are untouched; resume from the last one "
                "with a lower learning rate, or opt into the forget-NLL guard."
            )
        if model.training:
            self.logged_terms.update(terms)
            for name, value in terms.items():
                self._term_sums[name] += value.detach().double().cpu()
                self._term_counts[name] += 1
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._term_counts:
            names = sorted(self._term_counts)
            means = torch.tensor([self._term_sums[n].item() / self._term_counts[n] for n in names])
            if self.accelerator.num_processes > 1:
                means = self.accelerator.reduce(means.to(self.accelerator.device), reduction="mean").cpu()
            logs.update({name: round(value, 6) for name, value in zip(names, means.tolist(), strict=True)})
            self._term_sums.clear()
            self._term_counts.clear()
        super().log(logs, *args, **kwargs)
