"""KL: loss = -NLL(forget) + kl_weight * KL(p_ref(.|retain) || p_theta(.|retain)), token level.

The KL is averaged over every position of a retain row (`kl_positions: all`: image, prompt and answer, as
the SafeEraser reference) or over its answer positions (`answer`), per row, then over rows.
"""

from __future__ import annotations

from . import losses
from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer


@register_method("kl")
class KLTrainer(UnlearningTrainer):
    reference_groups = ("retain",)
    method_keys = frozenset({"kl_weight", "kl_positions", "forget_nll_guard", "forget_nll_ceiling"})

    def method_loss(self, batch: UnlearningBatch):
        ascent, terms = self.forget_ascent(batch)
        reference, reference_inputs = batch.reference_outputs("retain")
        if (self.finetuning_args.kl_positions or "all") == "all":  # image, prompt and answer
            positions, reference_positions = batch.attention_mask["retain"], reference_inputs["attention_mask"]
        else:
            positions = losses.answer_positions(batch.labels["retain"])
            reference_positions = losses.answer_positions(reference_inputs["labels"])
        kl = losses.kl_divergence(reference.logits, batch.logits["retain"], positions, reference_positions)
        kl_weight = 1.0 if self.finetuning_args.kl_weight is None else self.finetuning_args.kl_weight
        return ascent + kl_weight * kl, {**terms, "retain_kl": kl.detach()}
