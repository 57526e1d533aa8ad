"""GA, gradient ascent: loss = -NLL(forget)."""

from __future__ import annotations

from ..params import GUARD
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("ga")
class GATrainer(UnlearningTrainer):
    params = GUARD

    def method_loss(self, batch: StepOutputs):
        return self.forget_ascent(batch)
