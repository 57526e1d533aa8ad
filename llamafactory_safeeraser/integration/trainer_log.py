"""LLaMA-Factory's progress file, ``trainer_log.jsonl``, with the loss terms of each logged step.

LLaMA-Factory's LogCallback writes one line per logged step (steps, total loss, learning rate, timing);
LlamaBoard reads the file every two seconds to draw its loss curve. ``LossTermsLogCallback`` adds the step's
loss terms (``forget_nll``, ``pd_nll``, ``npo_loss``, ...) to that line under ``loss_terms``, which
``llamaboard`` draws as curves of their own. Which logged values are terms is the trainer's to say
(``term_names``): the other values of a log line are the Trainer's own (``grad_norm``, ``epoch``, ...).
"""

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llamafactory.extras.constants import TRAINER_LOG
from llamafactory.train.callbacks import LogCallback

from ..fileio import write_text_atomic

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

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A resumed run keeps the log of its earlier steps (LLaMA-Factory deletes it under
        ``overwrite_output_dir``); a fresh run into an overwritten folder also drops the old run's loss plots."""
        if getattr(args, "resume_from_checkpoint", None):
            return
        if args.should_save and getattr(args, "overwrite_output_dir", False):
            for plot in Path(args.output_dir).glob("training_*.png"):  # plot_loss's files, redrawn at the end
                plot.unlink()
        super().on_init_end(args, state, control, **kwargs)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if args.should_save and state.global_step > 0:  # resumed: lines after the checkpoint are logged again
            keep_log_until(Path(args.output_dir) / TRAINER_LOG, state.global_step)
        super().on_train_begin(args, state, control, **kwargs)

    def _write_log(self, output_dir: str, logs: dict[str, Any]) -> None:
        terms = self._terms_by_step.pop(logs.get("current_steps"), None)
        super()._write_log(output_dir, {**logs, LOSS_TERMS_KEY: terms} if terms else logs)


def keep_log_until(path: Path, step: int) -> None:
    """Keep the lines of ``trainer_log.jsonl`` up to ``step`` (the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short when the run was killed
        if isinstance(entry, dict) and int(entry.get("current_steps", 0)) <= step:
            kept.append(line)
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))
