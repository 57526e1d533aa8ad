"""What the demo evaluates with: each seed's ``eval/eval.yaml`` (the `safeeraser eval` keys its evaluations share),
``eval/attacks.yaml`` for the models ``--attacks`` names, and the run folders those evaluations write."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..evaluation.results import load_run_results, quantized_name, run_folder_name
from ..evaluation.settings import EvalSettings
from ..fileio import write_text_atomic
from ..settings import read_config
from .settings import ATTACK_QUANTIZATION_BITS, ATTACK_TASKS, DemoSettings, display_name

EVAL_CONFIG = "eval.yaml"  # in each seed's eval/: the keys every evaluation of the seed shares
ATTACK_CONFIG = "attacks.yaml"  # beside it: the same keys plus the attacks, for the models --attacks names
PLAIN_TASKS = ["safeeraser"]


def eval_keys(settings: DemoSettings, seed: int, data_dir: Path, attacked: bool = False) -> dict[str, Any]:
    """The `safeeraser eval` keys of one seed's evaluations (the rule judge: the keys' default); ``attacked``
    adds the attack tasks and the quantizations, whose runs are scored on the plain tasks only."""
    keys: dict[str, Any] = {
        "data_dir": str(data_dir),
        "harmful_samples": settings.harmful_samples,
        "max_new_tokens": settings.max_gen_toks,
        "limit": settings.eval_limit,
        "batch_size": settings.eval_batch_size,
        "seed": seed,
        "tasks": list(PLAIN_TASKS),
    }
    if attacked:
        keys["tasks"] += list(ATTACK_TASKS)
        keys["quantization_bits"] = list(ATTACK_QUANTIZATION_BITS)
        keys["quantized_tasks"] = list(PLAIN_TASKS)
    return keys


def write_eval_config(
    settings: DemoSettings, seed: int, paths: dict[str, Path], attacked: bool = False
) -> EvalSettings:
    """``eval/eval.yaml`` (``attacked``: ``eval/attacks.yaml``), so that `safeeraser eval eval.yaml
    model_name_or_path=... output_dir=...` repeats one evaluation; and the settings read back from it: the demo
    evaluates what the file says."""
    path = paths["eval"] / (ATTACK_CONFIG if attacked else EVAL_CONFIG)
    write_text_atomic(path, yaml.safe_dump(eval_keys(settings, seed, paths["data"], attacked), sort_keys=False))
    return read_config(EvalSettings, path)


def eval_folders(settings: DemoSettings, eval_dir: Path, names: Sequence[str]) -> list[Path]:
    """The run folders the evaluation of ``names`` (display names) writes: each run's, then each attacked run's
    after every quantization (``R@int8``, ``R@int4``)."""
    names = list(names)
    names += [
        quantized_name(name, bits) for name in names if settings.attacked(name) for bits in ATTACK_QUANTIZATION_BITS
    ]
    return [eval_dir / run_folder_name(name) for name in names]


def seed_results(settings: DemoSettings, eval_dir: Path) -> list[dict[str, Any]]:
    """A seed's results.json documents: the vanilla model's and every run's (and their quantized runs')."""
    names = ["vanilla", *(display_name(run) for run in settings.runs)]
    return [load_run_results(folder) for folder in eval_folders(settings, eval_dir, names)]
