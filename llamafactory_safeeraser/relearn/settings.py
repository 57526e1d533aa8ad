"""The keys of ``safeeraser relearn``, declared once (flags, YAML config, checks and help come from here).

:class:`RelearnSettings` is what every relearned run of one study shares (the Python API takes the runs
separately); :class:`RelearnCommand` adds the one run and the output folder the command line names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..evaluation.runner import EvalSettings, tasks_to_kinds
from ..lmeval_task.documents import FILE_NAMES
from ..lmeval_task.judges import JudgeConfig
from ..options import check_settings, key

DEFAULT_TASKS = ("safeeraser_efficacy", "safeeraser_generality")


@dataclass(frozen=True)
class RelearnSettings:
    data: str | None = key(help="folder holding all_train.json (the forget set) and all_val.json", required=True)
    template: str = key("llava", help="LLaMA-Factory template the model was trained with (llava, qwen2_vl, mllama)")
    steps: tuple[int, ...] = key(
        (0, 5, 10, 20), help="relearning step counts to score (0, no relearning, is always scored)", minimum=0
    )
    relearn_share: float = key(0.25, help="share of the forget records (whole records) the attacker trains on")
    seeds: tuple[int, ...] = key((233,), help="one split, training run and evaluation per seed; mean +- sd over them")
    learning_rate: float = key(1.0e-4, help="relearning learning rate (constant schedule)", minimum=0)
    batch_size: int = key(4, help="per_device_train_batch_size of the relearning run", minimum=1)
    gradient_accumulation_steps: int = key(1, help="gradient_accumulation_steps of the relearning run", minimum=1)
    lora_rank: int = key(8, help="rank of the attacker's new LoRA adapter", minimum=1)
    lora_target: str = key("all", help="lora_target of the attacker's adapter")
    cutoff_len: int = key(1088, help="cutoff_len of the relearning run (LLaVA: 576 image + 512 text tokens)", minimum=1)
    image_max_pixels: int | None = key(help="image_max_pixels of relearning and scoring (the recipe's)", minimum=1)
    image_min_pixels: int | None = key(help="image_min_pixels of relearning and scoring (the recipe's)", minimum=1)
    train_args: dict[str, Any] | None = key(
        help="more LLaMA-Factory keys for the relearning run (bf16, deepspeed, image_max_pixels, ...)",
        flag="--train-arg",
    )
    harmful_samples: int = key(3, help="responses sampled per harmful question in each evaluation", minimum=1)
    max_gen_toks: int | None = key(help="new tokens per response (default: the tasks' 512)", minimum=1)
    eval_batch_size: int = key(8, help="lm-eval batch size", minimum=1)
    limit: int | None = key(help="documents per task in each evaluation, for quick runs", minimum=1)
    tasks: tuple[str, ...] = key(DEFAULT_TASKS, help="SafeEraser lm-eval tasks scored after each step count")
    judge: str = key("rule", help="judge of ASR/RR: rule, hf or openai")
    judge_model: str | None = key(help="hf: local model folder; openai: served model name")
    judge_base_url: str | None = key(help="openai: e.g. http://127.0.0.1:8000/v1 (key: environment only)")
    judge_cache: str | None = key(help="sqlite file of judge replies ('off' disables)")
    device: str | None = key(help="evaluation device; default: cuda when available, else cpu")
    keep_models: bool = key(False, help="keep the merged model and the relearning checkpoints (large for 7B models)")
    overwrite: bool = key(False, help="replace existing run folders in the output folder")

    def __post_init__(self) -> None:
        check_settings(self)
        if not 0 < self.relearn_share < 1:
            raise SafeEraserError(f"key 'relearn_share' must be between 0 and 1 (exclusive), got {self.relearn_share}")
        if len(set(self.seeds)) != len(self.seeds):
            raise SafeEraserError(f"key 'seeds' repeats a seed: {' '.join(map(str, self.seeds))}")
        tasks_to_kinds(self.tasks)  # an unknown task name fails here
        self.judge_config()
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

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig.from_metadata(
            {
                "judge": self.judge,
                "judge_model": self.judge_model,
                "judge_base_url": self.judge_base_url,
                "judge_cache": self.judge_cache,
            }
        )

    def eval_settings(self, scored_train_file: Path, seed: int) -> EvalSettings:
        """The evaluation after each step count: the scored rest as the forget file, all_val.json for generality."""
        return EvalSettings(
            train_file=scored_train_file,
            val_file=self.data_file("val"),
            judge=self.judge_config(),
            harmful_samples=self.harmful_samples,
            max_gen_toks=self.max_gen_toks,
            limit=self.limit,
            batch_size=self.eval_batch_size,
            template=self.template,
            image_max_pixels=self.image_max_pixels,
            image_min_pixels=self.image_min_pixels,
            seed=seed,
            device=self.device,
            tasks=self.tasks,
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "overwrite"}


@dataclass(frozen=True)
class RelearnCommand(RelearnSettings):
    model: str | None = key(
        help="the unlearned model: base model folder (with --adapter) or a merged model", required=True
    )
    adapter: str | None = key(help="the unlearning run's LoRA adapter folder (merged into the model first)")
    name: str | None = key(help="run name in the report (default: adapter or model folder name)")
    out: str | None = key(help="output folder: OUT/<name>/relearn.json, OUT/report.md, OUT/report.png", required=True)

    @property
    def run_name(self) -> str:
        return self.name or Path(str(self.adapter or self.model)).name
