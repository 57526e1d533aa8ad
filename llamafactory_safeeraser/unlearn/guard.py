"""The opt-in forget-NLL guard of the gradient-ascent methods (GA, GD, KL): `forget_nll_guard`."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import TrainerCallback

from ..integration import llamafactory as lf
from . import losses

logger = lf.get_logger(__name__)


class ForgetNLLGuard(TrainerCallback):
    """Holds forget rows at ``forget_nll_ceiling`` ('clamp') or ends training there ('stop'); 'off': nothing.

    As a callback it ends training on every process once the 'stop' guard tripped on any of them.
    """

    def __init__(self, trainer: Any, action: str, ceiling: float | None, vocab_size: int):
        self.trainer = trainer
        self.action = action
        # default: the NLL of a uniform guess over the vocabulary
        self.ceiling = math.inf if action == "off" else (ceiling or math.log(vocab_size))
        self.tripped = False
        self.announced = False

    def ascent(self, logps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-NLL(forget) under the guard, and the terms to log."""
        loss, held_back = losses.guarded_ascent(logps, mask, self.ceiling if self.action == "clamp" else math.inf)
        forget_nll = losses.mean_nll(logps, mask).detach()
        if self.action == "stop" and forget_nll.item() > self.ceiling:
            self.tripped = True
        if not self.announced and held_back.item():
            self.announced = True  # afterwards the logged term `guard_held_back` tracks it
            logger.warning_rank0(
                f"forget-NLL guard: from step {self.trainer.state.global_step} on, forget rows whose NLL is above "
                f"{self.ceiling:.2f} are held at that ceiling instead of ascending (logged as guard_held_back)"
            )
        return loss, {"forget_nll": forget_nll, "guard_held_back": held_back.float()}

    def on_step_end(self, args, state, control, **kwargs):
        if self.action == "stop" and self.trainer.any_process(self.tripped):
            logger.warning_rank0(
                f"forget-NLL guard: forget NLL passed {self.ceiling:.2f}; "
                f"stopping training at step {state.global_step} and saving the model."
            )
            control.should_training_stop = True
        return control
