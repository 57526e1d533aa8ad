"""KL: loss = -NLL(forget) + kl_weight * KL(p_ref(.|retain) || p_theta(.|retain)), token level."""

from __future__ import annotations

from . import losses
from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer


@register_method("kl")
class KLTrainer(UnlearningTrainer):
    reference_groups = ("retain",)
    method_keys = frozenset({"kl_weight"})

    def method_loss(self, batch: UnlearningBatch):
        ascent, terms = self.forget_ascent(batch)
        reference_logits, reference_labels = batch.reference_logits("retain")
        kl = losses.kl_divergence(reference_logits, batch.logits["retain"], batch.labels["retain"], reference_labels)
        kl_weight = 1.0 if self.finetuning_args.kl_weight is None else self.finetuning_args.kl_weight
        return ascent + kl_weight * kl, {**terms, "retain_kl": kl.detach()}
