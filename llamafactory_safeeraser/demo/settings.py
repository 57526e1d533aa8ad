"""What the demo runs: its settings, the methods and run names, and where the recipes are."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..lmeval_task.attacks.catalog import ATTACK_GROUP
from ..offline.synthetic import World
from ..settings import check_settings, setting
from ..unlearn.registry import BUILTIN_METHODS as METHODS

CPU_COUNT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
RUN_NAMES = tuple(f"{method}{suffix}" for method in METHODS for suffix in ("", "_pd"))
DEFAULT_SEEDS = (233, 234, 235)
# `--relearn` and `--attacks` without names: the vanilla model and the paper's headline methods, each without
# and with PD
HEADLINE_MODELS = ("vanilla", "ga", "ga_pd", "npo", "npo_pd", "po", "po_pd")
# The world the demo runs in (docs/demo.md: what each choice did to over-forgetting). Benign images that look
# like the harmful ones and questions that do not name the concept make "refuse when the image looks harmful"
# hard to learn, which is where over-forgetting shows.
DEMO_WORLD = World(
    concept_free_questions=True, similar_images=True, sd_grey=100, image_refusals=True, fresh_sarr_images=True
)


# `--attacks`: the lm-eval group of the attack tasks, and the weight quantizations each model is also scored after
ATTACK_TASKS = (ATTACK_GROUP,)
ATTACK_QUANTIZATION_BITS = (8, 4)

MAX_SEED_COUNT = 99  # `seeds` N up to this is a count; a larger single number is one seed (--seeds 240)


def seed_list(value: Any) -> Any:
    """``seeds`` text (or a YAML number): N <= MAX_SEED_COUNT: the first N of 233, 234, ...; else seeds."""
    if isinstance(value, (list, tuple)):
        return value  # the seeds themselves
    try:
        seeds = tuple(int(part) for part in str(value).split(","))
    except ValueError:
        raise ValueError("expected a count or a comma-separated list") from None
    if len(seeds) > 1 or seeds[0] > MAX_SEED_COUNT:
        return seeds
    if seeds[0] < 1:
        raise ValueError("expected at least one seed")
    return tuple(DEFAULT_SEEDS[0] + i for i in range(seeds[0]))


@dataclass
class DemoSettings:
    out_dir: Path = setting(
        Path("demo_out"), help="output folder; finished steps are reused on a re-run", flags=("--out",)
    )
    seeds: tuple[int, ...] = setting(  # every number is a mean ± sd over these
        DEFAULT_SEEDS,
        help=f"N <= {MAX_SEED_COUNT}: the first N of 233, 234, ... (1 for a quick look); a larger number: that "
        "one seed; or a comma-separated list",
        parse=seed_list,
    )
    world: World = DEMO_WORLD
    images_per_concept: int = 4
    model_size: str = "demo"
    runs: tuple[str, ...] = RUN_NAMES
    parallel: int = setting(2, help="unlearning runs trained at the same time", minimum=1)  # 2 cores: one each
    harmful_samples: int = 1  # the paper samples 3 answers per harmful question
    max_gen_toks: int = 40  # the paper allows 512; the synthetic answers are < 30 tokens
    eval_batch_size: int = 64
    eval_limit: int | None = None
    vanilla_overrides: dict[str, Any] = field(default_factory=dict)
    unlearn_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_dir: Path | None = setting(
        help="folder of the tiny_*.yaml recipes (default: the installed yaml/)", flags=("--recipes",)
    )
    relearn: tuple[str, ...] = setting(
        (),
        help="afterwards, attack these models by relearning (vanilla and run names such as po_pd; without names: "
        f"{' '.join(HEADLINE_MODELS)}); about 40 s per model and seed",
        const=HEADLINE_MODELS,
    )
    relearn_steps: tuple[int, ...] = (0, 16, 32, 64)  # relearning step counts scored
    attacks: tuple[str, ...] = setting(
        (),
        help=f"also score these models under the attacks ({', '.join(ATTACK_TASKS)}) and, on the plain tasks, "
        f"after {'- and '.join(map(str, ATTACK_QUANTIZATION_BITS))}-bit weight quantization; report.md gains the "
        f"Robustness table (names as --relearn; without names: {' '.join(HEADLINE_MODELS)}; docs/demo.md: the "
        "time it adds)",
        const=HEADLINE_MODELS,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        for flag, names in (("--relearn", self.relearn), ("--attacks", self.attacks)):
            unknown = [name for name in names if name != "vanilla" and name not in self.runs]
            if unknown:
                raise SafeEraserError(
                    f"{flag}: {', '.join(unknown)} is not among the demo's runs (vanilla, {', '.join(self.runs)})"
                )

    def fingerprint(self, seed: int, *keys: str) -> str:
        """What a seed's step depends on, as a short hash (a changed value redoes the step)."""
        values = {"seed": seed, **{k: getattr(self, k) for k in keys}}
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=_plain).encode()).hexdigest()[:16]

    def attacked(self, display: str) -> bool:
        """Whether the model of display name ``display`` (``vanilla``, ``GA+PD``, ...) is scored under attacks."""
        return display in {display_name(name) for name in self.attacks}

    def recorded(self) -> dict[str, Any]:
        """The settings as plain values (for settings.json and demo_results.json)."""
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if k != "out_dir"}, default=_plain))


def _plain(value: Any) -> Any:
    """What json cannot write itself: paths as text, the world as its fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value) if isinstance(value, Path) else value


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
