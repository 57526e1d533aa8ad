"""The keys of ``safeeraser relearn``, declared once (YAML config, key=value, flags, checks and help come from here).

:class:`RelearnSettings` is what every relearned run of one study shares (the Python API takes the runs
separately); :class:`RelearnCommand` adds the one run and the output folder the command line names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..evaluation.lmeval_output import tasks_to_kinds
from ..evaluation.settings import EvalSettings
from ..lmeval_task.documents import FILE_NAMES, TaskSettings
from ..lmeval_task.judges import JudgeConfig
from ..lmeval_task.judges.config import PREFIX as JUDGE_PREFIX
from ..settings import check_settings, group, setting, shared, values_of

DEFAULT_TASKS = ("safeeraser_efficacy", "safeeraser_generality")


@dataclass(frozen=True)
class RelearnSettings:
    data: str | None = setting(help="folder holding all_train.json (the forget set) and all_val.json", required=True)
    template: str = shared(TaskSettings, "template")
    steps: tuple[int, ...] = setting(
        (0, 5, 10, 20), help="relearning step counts to score (0, no relearning, is always scored)", minimum=0
    )
    relearn_share: float = setting(
        0.25,
        help="share of the forget records (whole records) the attacker trains on",
        check=lambda share: None if 0 < share < 1 else "must be between 0 and 1 (exclusive)",
    )
    seeds: tuple[int, ...] = setting(
        (233,), help="one split, training run and evaluation per seed; mean +- sd over them"
    )
    learning_rate: float = setting(1.0e-4, help="relearning learning rate (constant schedule)", minimum=0)
    batch_size: int = setting(4, help="per_device_train_batch_size of the relearning run", minimum=1)
    gradient_accumulation_steps: int = setting(1, help="gradient_accumulation_steps of the relearning run", minimum=1)
    lora_rank: int = setting(8, help="rank of the attacker's new LoRA adapter", minimum=1)
    lora_target: str = setting("all", help="lora_target of the attacker's adapter")
    cutoff_len: int = setting(
        1087,
        help="cutoff_len of the relearning run (LLaVA-1.5: 576 image tokens + 511 text positions, as the recipes)",
        minimum=1,
    )
    image_max_pixels: int | None = shared(
        TaskSettings, "image_max_pixels", help="image_max_pixels of relearning and scoring (the recipe's)"
    )
    image_min_pixels: int | None = shared(
        TaskSettings, "image_min_pixels", help="image_min_pixels of relearning and scoring (the recipe's)"
    )
    train_args: dict[str, Any] | None = setting(
        help="more LLaMA-Factory keys for the relearning run (bf16, deepspeed, image_max_pixels, ...)",
        flags=("--train-arg",),
    )
    # the evaluation after each step count: EvalSettings' keys of the same field name
    harmful_samples: int = shared(
        EvalSettings, "harmful_samples", help="responses sampled per harmful question in each evaluation"
    )
    max_gen_toks: int | None = shared(EvalSettings, "max_gen_toks")
    eval_batch_size: int = shared(EvalSettings, "batch_size", default=8, help="lm-eval batch size")
    limit: int | None = shared(EvalSettings, "limit")
    tasks: tuple[str, ...] = shared(
        EvalSettings, "tasks", default=DEFAULT_TASKS, help="SafeEraser lm-eval tasks scored after each step count"
    )
    judge: JudgeConfig = group(JudgeConfig, JUDGE_PREFIX)
    device: str | None = shared(EvalSettings, "device", help="evaluation device; none: cuda when available, else cpu")
    keep_models: bool = setting(
        False, help="keep the merged model and the relearning checkpoints (large for 7B models)"
    )
    overwrite: bool = setting(False, help="replace existing run folders in the output folder")

    def __post_init__(self) -> None:
        check_settings(self)
        if len(set(self.seeds)) != len(self.seeds):
            raise SafeEraserError(f"key 'seeds' repeats a seed: {' '.join(map(str, self.seeds))}")
        tasks_to_kinds(self.tasks)  # an unknown task name fails here
        object.__setattr__(self, "steps", tuple(sorted({0, *self.steps})))

    @property
    def max_steps(self) -> int:
        return max(self.steps)

    @property
    def save_steps(self) -> int:
        """Checkpoints every this many steps land on every scored step count (their greatest common divisor)."""
        return math.gcd(*[s for s in self.steps if s > 0]) if self.max_steps else 0

    def data_file(self, which: str) -> Path:
        return Path(str(self.data)) / FILE_NAMES[which]

    def eval_settings(self, scored_train_file: Path, seed: int) -> EvalSettings:
        """The evaluation after each step count: the scored rest as the forget file, all_val.json for generality."""
        same = {
            item.name: getattr(self, item.name) for item in dataclasses.fields(EvalSettings) if hasattr(self, item.name)
        }
        same.update(batch_size=self.eval_batch_size, seed=seed)
        return EvalSettings(**same, train_file=scored_train_file, val_file=self.data_file("val"))

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in values_of(self).items() if name != "overwrite"}


@dataclass(frozen=True)
class RelearnCommand(RelearnSettings):
    model: str | None = setting(
        help="the unlearned model: base model folder (with --adapter) or a merged model", required=True
    )
    adapter: str | None = setting(help="the unlearning run's LoRA adapter folder (merged into the model first)")
    name: str | None = setting(help="run name in the report (default: adapter or model folder name)")
    out: str | None = setting(
        help="output folder: OUT/<name>/relearn.json, OUT/report.md, OUT/report.png", required=True
    )

    @property
    def run_name(self) -> str:
        return self.name or Path(str(self.adapter or self.model)).name
