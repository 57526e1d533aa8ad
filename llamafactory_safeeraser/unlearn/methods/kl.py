"""KL: loss = -NLL(forget) + kl_weight * KL(p_ref(.|retain) || p_theta(.|retain)), token level.

The KL is averaged over every position of a retain row (`kl_positions: all`: image, prompt and answer, as
the SafeEraser reference) or over its answer positions (`answer`), per row, then over rows.
"""

from __future__ import annotations

from .. import losses
from ..params import GUARD, non_negative, one_of
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("kl")
class KLTrainer(UnlearningTrainer):
    reference_row_sets = ("retain",)
    params = (
        non_negative("kl_weight", float, 1.0, "weight of KL(p_ref || p_theta) on the retain rows"),
        one_of(
            "kl_positions",
            ("all", "answer"),
            "all",
            "positions of a retain row the KL averages over: 'all' (image, prompt and answer, as the SafeEraser "
            "reference) or 'answer'",
        ),
        *GUARD,
    )

    def method_loss(self, batch: StepOutputs):
        ascent, terms = self.forget_ascent(batch)
        reference, reference_inputs = self.reference_outputs(batch, "retain")
        if self.finetuning_args.kl_positions == "all":
            positions, reference_positions = batch.attention_mask["retain"], reference_inputs["attention_mask"]
        else:
            positions = losses.answer_positions(batch.labels["retain"])
            reference_positions = losses.answer_positions(reference_inputs["labels"])
        kl = losses.kl_divergence(reference.logits, batch.logits["retain"], positions, reference_positions)
        return ascent + self.finetuning_args.kl_weight * kl, {**terms, "retain_kl": kl.detach()}
