"""PO, preference optimisation towards "I don't know": loss = NLL(forget -> refusal) + retain_weight * NLL(retain).

PO trains on the forget prompts' refusal twins: the same rows with a refusal (drawn at random
from the built-in list or `refusal_file`) instead of the harmful answer.
"""

from __future__ import annotations

from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer


@register_method("po")
class POTrainer(UnlearningTrainer):
    uses_forget_rows = False
    uses_refusal_rows = True
    default_retain_weight = 1.0
    method_keys = frozenset({"refusal_file"})

    def method_loss(self, batch: UnlearningBatch):
        refusal_nll = batch.nll("refusal")  # the base class adds retain_weight * NLL(retain)
        return refusal_nll, {"refusal_nll": refusal_nll.detach()}
