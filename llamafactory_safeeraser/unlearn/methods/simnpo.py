"""SimNPO: loss = (2/beta) * mean_f softplus(beta * log pi_theta(y|x) / |y| + gamma) [+ retain_weight * NLL(r)].

NPO without a reference model (Fan et al. 2024, "Simplicity Prevails"): the reference log-prob is
replaced by a length normalisation, so long answers are not forgotten faster than short ones.
"""

from __future__ import annotations

from ...settings import Setting
from .. import losses
from ..params import positive, retain_weight
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("simnpo")
class SimNPOTrainer(UnlearningTrainer):
    params = (
        positive("simnpo_beta", float, 2.5, "SimNPO's inverse temperature beta"),
        Setting("simnpo_gamma", float, 0.0, "SimNPO's reward margin gamma"),
        retain_weight(0.0),  # optional term, off unless set
    )

    def method_loss(self, batch: StepOutputs):
        args = self.finetuning_args
        lengths = losses.answer_lengths(batch.labels["forget"])
        policy = batch.sequence_logps("forget")
        simnpo = losses.simnpo_loss(policy, lengths, args.simnpo_beta, args.simnpo_gamma)
        return simnpo, {"simnpo_loss": simnpo.detach(), "forget_nll": batch.nll("forget").detach()}
