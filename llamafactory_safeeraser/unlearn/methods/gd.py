"""GD, gradient difference: loss = -NLL(forget) + retain_weight * NLL(retain)."""

from __future__ import annotations

from ..params import GUARD, retain_weight
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("gd")
class GDTrainer(UnlearningTrainer):
    params = (retain_weight(1.0), *GUARD)

    def method_loss(self, batch: StepOutputs):
        return self.forget_ascent(batch)  # the base class adds retain_weight * NLL(retain)
