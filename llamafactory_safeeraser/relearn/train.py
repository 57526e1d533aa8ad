"""The attacker's relearning run: plain ``llamafactory-cli train`` SFT of a new LoRA adapter on the held records.

One run per (run, seed) trains ``max(steps)`` steps at a constant learning rate and saves the adapter at
every ``save_steps``; with a constant schedule the checkpoint at step s is the model a run of s steps
gives, so one training run serves every step count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..data.prepare import dataset_info_entry, forget_rows
from ..data.records import SafeEraserRecord
from ..errors import SafeEraserError
from ..fileio import write_json_atomic, write_text_atomic
from ..integration.train_command import llamafactory_cli_train
from .settings import RelearnSettings

RELEARN_DATASET = "safeeraser_relearn"


def write_relearn_dataset(records: Sequence[SafeEraserRecord], dataset_dir: Path) -> int:
    """The held records' forget rows (harmful image + question -> model_response) as a LLaMA-Factory dataset."""
    rows = forget_rows(list(records))
    write_json_atomic(dataset_dir / "relearn.json", rows)
    write_json_atomic(dataset_dir / "dataset_info.json", {RELEARN_DATASET: dataset_info_entry("relearn.json")})
    return len(rows)


def relearn_config(model_dir: Path, dataset_dir: Path, output_dir: Path, settings: RelearnSettings, seed: int) -> dict:
    """The LLaMA-Factory YAML of the relearning run (``train_args`` last: the user's keys win)."""
    images = {
        name: getattr(settings, name)
        for name in ("image_max_pixels", "image_min_pixels")
        if getattr(settings, name) is not None
    }
    return {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": settings.lora_rank,
        "lora_target": settings.lora_target,
        "template": settings.template,
        "dataset_dir": str(dataset_dir),
        "dataset": RELEARN_DATASET,
        "cutoff_len": settings.cutoff_len,
        "overwrite_cache": True,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_only_model": True,
        "logging_steps": 1,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "report_to": "none",
        "seed": seed,
        **images,
        **(settings.train_args or {}),
    }


def run_llamafactory_train(config: dict[str, Any], config_file: Path, log_file: Path) -> None:
    """Write ``config`` as YAML and run ``llamafactory-cli train`` on it; one-line error on failure."""
    write_text_atomic(config_file, yaml.safe_dump(config, sort_keys=False))
    llamafactory_cli_train(config_file, log_file, "relearning run")


def checkpoint(output_dir: Path, steps: int) -> Path:
    path = output_dir / f"checkpoint-{steps}"
    if not (path / "adapter_config.json").is_file():
        raise SafeEraserError(f"{path}: the relearning run saved no adapter at step {steps}")
    return path
