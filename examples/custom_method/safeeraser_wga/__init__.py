"""Weighted gradient ascent (WGA): ascend the forget NLL, weighting each token by p(token)^alpha.

Tokens the model has already stopped predicting get little weight, so ascent slows down by
itself (Wang et al., 2025, "Rethinking LLM Unlearning Objectives"). An example of a
user-registered method: a small trainer class, its own YAML key, and a pure loss function. Prompt
decouple (`pd_dataset`) is added to it by the base class, like to every built-in method.
"""

from __future__ import annotations

import torch

from llamafactory_safeeraser.settings import Setting
from llamafactory_safeeraser.unlearn import StepOutputs, UnlearningTrainer
from llamafactory_safeeraser.unlearn.losses import row_means, token_logps


def weighted_ascent_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """p^alpha * log p averaged over each row's answer tokens, then over rows (the weight p^alpha a constant).

    A mean of per-row means, like every built-in loss: the gradient is then the same however a global batch
    is split over micro-batches and processes.
    """
    logps, mask = token_logps(logits, labels)
    weights = logps.detach().exp().pow(alpha)
    return row_means(weights * logps, mask).mean()


class WGATrainer(UnlearningTrainer):
    # `wga_alpha: 0.5` in a YAML file sets it; `llamafactory-cli train -h` lists it
    params = (Setting("wga_alpha", float, 1.0, "WGA: exponent of the token weight p^alpha", minimum=0),)

    def method_loss(self, batch: StepOutputs):
        alpha = self.finetuning_args.wga_alpha  # resolved at parse time: the YAML's value or the default
        loss = weighted_ascent_loss(batch.logits["forget"], batch.labels["forget"], alpha)
        return loss, {"wga_loss": loss.detach(), "forget_nll": batch.nll("forget").detach()}
