"""GD, gradient difference: loss = -NLL(forget) + retain_weight * NLL(retain)."""

from __future__ import annotations

from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer


@register_method("gd")
class GDTrainer(UnlearningTrainer):
    default_retain_weight = 1.0

    def method_loss(self, batch: UnlearningBatch):
        ascent, terms = self.forget_ascent(batch)
        retain, retain_terms = self.retain_term(batch)
        return ascent + retain, {**terms, **retain_terms}
