"""The demo's relearning attack (``safeeraser demo --relearn``): per seed, the chosen models fine-tuned on a
quarter of the forget records and re-scored on the rest; then each run's recovery curve over all seeds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..evaluation.results import RunSpec, run_folder_name
from ..relearn import RelearnSettings, relearn_runs
from ..relearn.report import load_relearn, pooled_study, write_studies_report
from .settings import DemoSettings, display_name

# The relearning run: the settings measured on the demo model (docs/evaluation.md, relearning section)
RELEARN_LEARNING_RATE = 5.0e-3
RELEARN_CUTOFF_LEN = 256


def relearn_specs(settings: DemoSettings, paths: dict[str, Path]) -> list[RunSpec]:
    """The models ``settings.relearn`` names: the vanilla model, or a run's adapter on it."""
    return [
        RunSpec(display_name(name), paths["vanilla"], None if name == "vanilla" else paths["runs"] / name)
        for name in settings.relearn
    ]


def relearn_seed(settings: DemoSettings, seed: int, paths: dict[str, Path], say: Callable[[str], None]) -> Path:
    """Relearn one seed's chosen models into ``paths["relearn"]``; returns its report.md."""
    relearn_settings = RelearnSettings(
        data=str(paths["data"]),
        steps=settings.relearn_steps,
        seeds=(seed,),
        learning_rate=RELEARN_LEARNING_RATE,
        cutoff_len=RELEARN_CUTOFF_LEN,
        harmful_samples=settings.harmful_samples,
        max_gen_toks=settings.max_gen_toks,
        eval_batch_size=settings.eval_batch_size,
        train_args={"preprocessing_num_workers": 1, "dataloader_num_workers": 0},
        overwrite=True,
    )
    return relearn_runs(relearn_specs(settings, paths), relearn_settings, paths["relearn"], progress=say)


def write_pooled_report(settings: DemoSettings, seed_dirs: list[Path], out_path: Path) -> list[dict[str, Any]]:
    """One recovery curve per relearned run over all seeds (report.md and report.png at ``out_path``); returns
    the pooled studies."""
    studies = [
        pooled_study([load_relearn(folder / "relearn" / run_folder_name(display_name(name))) for folder in seed_dirs])
        for name in settings.relearn
    ]
    write_studies_report(studies, out_path)
    return studies
