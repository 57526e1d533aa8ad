"""NPO: loss = (2/beta) * mean_forget log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) [+ retain_weight * NLL(retain)]."""

from __future__ import annotations

from . import losses
from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer

DEFAULT_BETA = 0.1


@register_method("npo")
class NPOTrainer(UnlearningTrainer):
    reference_groups = ("forget",)
    default_retain_weight = 0.0  # optional term, off unless retain_weight is set
    method_keys = frozenset({"npo_beta"})

    def method_loss(self, batch: UnlearningBatch):
        beta = self.finetuning_args.npo_beta or DEFAULT_BETA
        policy = batch.sequence_logps("forget")
        reference = batch.reference_sequence_logps("forget")
        npo = losses.npo_loss(policy, reference, beta)
        terms = {
            "npo_loss": npo.detach(),
            "npo_log_ratio": (policy - reference).mean().detach(),
            "forget_nll": batch.nll("forget").detach(),
        }
        return npo, terms
