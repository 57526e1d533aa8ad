"""PO, preference optimisation towards "I don't know": the forget prompts answered with refusals, plus retain rows.

PO trains on the forget prompts' refusal twins: the same rows with a refusal (drawn at random from the
built-in list or `refusal_file`, anew every epoch unless `refusal_sampling: fixed`) instead of the
harmful answer. Two reductions (`po_reduction`):
- `joint` (default, the SafeEraser reference): each refusal row and its retain row form one sequence with
  one token mean, (sum NLL(refusal tokens) + retain_weight * sum NLL(retain tokens)) / (their token count);
- `separate`: NLL(refusal) + retain_weight * NLL(retain), each a mean over rows.
"""

from __future__ import annotations

from .. import losses
from ..params import REFUSAL_FILE, SAMPLING_MODES, one_of, retain_weight
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("po")
class POTrainer(UnlearningTrainer):
    uses_forget_rows = False
    uses_refusal_rows = True
    params = (
        retain_weight(1.0),
        one_of(
            "po_reduction",
            ("joint", "separate"),
            "joint",
            "'joint': one token mean over each refusal row and its retain row together, retain tokens weighted by "
            "retain_weight (the SafeEraser reference); 'separate': NLL(refusal) + retain_weight * NLL(retain)",
        ),
        one_of(
            "refusal_sampling",
            SAMPLING_MODES,
            "per_epoch",
            "draw each forget row's refusal anew every epoch (as the SafeEraser reference) or once ('fixed')",
        ),
        REFUSAL_FILE,
    )

    @property
    def joint(self) -> bool:
        return self.finetuning_args.po_reduction == "joint"

    @property
    def adds_retain_nll(self) -> bool:
        return not self.joint

    def method_loss(self, batch: StepOutputs):
        refusal_nll = batch.nll("refusal")
        terms = {"refusal_nll": refusal_nll.detach()}
        if not (self.joint and batch.has("retain")):
            return refusal_nll, terms  # separate: the base class adds retain_weight * NLL(retain)
        loss = losses.joint_nll(*batch.token_logps("refusal"), *batch.token_logps("retain"), self.retain_weight)
        return loss, {**terms, "retain_nll": batch.nll("retain").detach(), "po_joint_nll": loss.detach()}
