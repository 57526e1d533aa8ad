"""GA, gradient ascent: loss = -NLL(forget)."""

from __future__ import annotations

from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer


@register_method("ga")
class GATrainer(UnlearningTrainer):
    method_keys = frozenset({"forget_nll_guard", "forget_nll_ceiling"})

    def method_loss(self, batch: UnlearningBatch):
        return self.forget_ascent(batch)
