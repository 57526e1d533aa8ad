"""NPO: loss = (2/beta) * mean_forget log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) [+ retain_weight * NLL(retain)]."""

from __future__ import annotations

from .. import losses
from ..params import positive, retain_weight
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("npo")
class NPOTrainer(UnlearningTrainer):
    reference_row_sets = ("forget",)
    params = (
        positive("npo_beta", float, 0.1, "NPO's inverse temperature beta (Zhang et al. 2024)"),
        retain_weight(0.0),  # optional term, off unless set
    )

    def method_loss(self, batch: StepOutputs):
        policy = batch.sequence_logps("forget")
        reference = self.reference_sequence_logps(batch, "forget")
        npo = losses.npo_loss(policy, reference, self.finetuning_args.npo_beta)
        terms = {
            "npo_loss": npo.detach(),
            "npo_log_ratio": (policy - reference).mean().detach(),
            "forget_nll": batch.nll("forget").detach(),
        }
        return npo, terms
