"""LLaMA-Factory's progress file, ``trainer_log.jsonl``, with the loss terms of each logged step.

LLaMA-Factory's LogCallback writes one line per logged step (steps, total loss, learning rate, timing);
LlamaBoard reads the file every two seconds to draw its loss curve. ``LossTermsLogCallback`` adds the step's
loss terms (``forget_nll``, ``pd_nll``, ``npo_loss``, ...) to that line under ``loss_terms``, which
``llamaboard`` draws as curves of their own. Which logged values are terms is the trainer's to say
(``term_names``): the other values of a log line are the Trainer's own (``grad_norm``, ``epoch``, ...).
"""

from collections.abc import Collection
from typing import Any

from llamafactory.train.callbacks import LogCallback

LOSS_TERMS_KEY = "loss_terms"  # a line's {term: value}, absent on lines without terms


class LossTermsLogCallback(LogCallback):
    """LLaMA-Factory's LogCallback; its lines also carry the terms named in ``term_names``."""

    def __init__(self) -> None:
        super().__init__()
        self.term_names: Collection[str] = ()
        # LogCallback writes on a worker thread: a step's terms wait here, keyed by step, for its line
        self._terms_by_step: dict[int, dict[str, float]] = {}

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        terms = {name: value for name, value in (logs or {}).items() if name in self.term_names}
        if terms and args.should_save:  # the process that writes the file
            self._terms_by_step[state.global_step] = terms
        super().on_log(args, state, control, logs=logs, **kwargs)

    def _write_log(self, output_dir: str, logs: dict[str, Any]) -> None:
        terms = self._terms_by_step.pop(logs.get("current_steps"), None)
        super()._write_log(output_dir, {**logs, LOSS_TERMS_KEY: terms} if terms else logs)
