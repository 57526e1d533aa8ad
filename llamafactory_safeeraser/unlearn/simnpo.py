"""SimNPO: loss = (2/beta) * mean_f softplus(beta * log pi_theta(y|x) / |y| + gamma) [+ retain_weight * NLL(r)].

NPO without a reference model (Fan et al. 2024, "Simplicity Prevails"): the reference log-prob is
replaced by a length normalisation, so long answers are not forgotten faster than short ones.
"""

from __future__ import annotations

from . import losses
from .registry import register_method
from .trainer import UnlearningBatch, UnlearningTrainer

DEFAULT_BETA = 2.5
DEFAULT_GAMMA = 0.0


@register_method("simnpo")
class SimNPOTrainer(UnlearningTrainer):
    default_retain_weight = 0.0  # optional term, off unless retain_weight is set
    method_keys = frozenset({"simnpo_beta", "simnpo_gamma"})

    def method_loss(self, batch: UnlearningBatch):
        args = self.finetuning_args
        beta = args.simnpo_beta or DEFAULT_BETA
        gamma = DEFAULT_GAMMA if args.simnpo_gamma is None else args.simnpo_gamma
        lengths = losses.answer_lengths(batch.labels["forget"])
        policy = batch.sequence_logps("forget")
        simnpo = losses.simnpo_loss(policy, lengths, beta, gamma)
        return simnpo, {"simnpo_loss": simnpo.detach(), "forget_nll": batch.nll("forget").detach()}
