"""What the demo runs: its settings, the methods and run names, and where the recipes are."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError

METHODS = ("ga", "gd", "kl", "po", "npo", "simnpo", "idkdpo", "rmu")  # paper methods first
CPU_COUNT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
RUN_NAMES = tuple(f"{method}{suffix}" for method in METHODS for suffix in ("", "_pd"))
@dataclass
class DemoSettings:
    out_dir: Path = Path("demo_out")
    seed: int = 233
    images_per_concept: int = 4
    model_size: str = "demo"
    runs: tuple[str, ...] = RUN_NAMES
    parallel: int = 2  # training runs at a time (2 cores: one thread each)
    harmful_samples: int = 1  # the paper samples 3 answers per harmful question
    max_gen_toks: int = 40  # the paper allows 512; the synthetic answers are < 30 tokens
    eval_batch_size: int = 64
    eval_limit: int | None = None
    vanilla_overrides: dict[str, Any] = field(default_factory=dict)
    unlearn_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_dir: Path | None = None

    def fingerprint(self, *keys: str) -> str:
        values = {k: getattr(self, k) for k in keys}
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recipe_dir(settings: DemoSettings) -> Path:
    """The yaml/ folder: the repository's, or the copy installed under sys.prefix/share."""
    candidates = [settings.recipe_dir] if settings.recipe_dir else []
    candidates += [
        Path(__file__).resolve().parents[2] / "yaml",
        Path(sys.prefix) / "share/llamafactory-safeeraser/yaml",
    ]
    for candidate in candidates:
        if candidate and (candidate / "tiny_vanilla_sft.yaml").is_file():
            return candidate
    raise SafeEraserError("cannot find the yaml/ recipes (tiny_vanilla_sft.yaml); pass --recipes DIR")


METHOD_LABELS = {"simnpo": "SimNPO", "idkdpo": "IdkDPO"}  # the rest are upper-case acronyms


def display_name(run: str) -> str:
    """'ga_pd' -> 'GA+PD', 'simnpo' -> 'SimNPO' (the run names of the report)."""
    if run == "vanilla":
        return run
    method, _, pd = run.partition("_")
    return METHOD_LABELS.get(method, method.upper()) + ("+PD" if pd else "")


