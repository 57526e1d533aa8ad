"""IdkDPO: DPO with a refusal as the preferred answer and the harmful answer as the rejected one.

loss = -mean log sigmoid(beta * ((log pi(refusal) - log ref(refusal)) - (log pi(harmful) - log ref(harmful))))
       [+ retain_weight * NLL(retain)]
beta is LLaMA-Factory's own DPO key `pref_beta`; the reference is the adapter disabled under LoRA, and its
log-probs are cached per row, so each row keeps one refusal for the whole run.
"""

from __future__ import annotations

from ...integration import llamafactory as lf
from .. import losses
from ..params import REFUSAL_FILE, retain_weight
from ..registry import register_method
from ..trainer import StepOutputs, UnlearningTrainer


@register_method("idkdpo")
class IdkDPOTrainer(UnlearningTrainer):
    uses_refusal_rows = True  # chosen: the forget prompt answered with a refusal
    reference_row_sets = ("forget", "refusal")
    params = (retain_weight(1.0), REFUSAL_FILE)

    def method_loss(self, batch: StepOutputs):
        chosen = batch.sequence_logps("refusal")
        rejected = batch.sequence_logps("forget")
        reference_chosen = self.reference_sequence_logps(batch, "refusal")
        reference_rejected = self.reference_sequence_logps(batch, "forget")
        dpo = losses.dpo_loss(chosen, rejected, reference_chosen, reference_rejected, lf.dpo_beta(self.finetuning_args))
        margin = (chosen - reference_chosen) - (rejected - reference_rejected)
        terms = {
            "dpo_loss": dpo.detach(),
            "dpo_margin": margin.mean().detach(),
            "forget_nll": batch.nll("forget").detach(),
            "refusal_nll": batch.nll("refusal").detach(),
        }
        return dpo, terms
