"""Checks of the runs to evaluate, before any model loads: one line each."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import SafeEraserError
from .results import RESULTS_FILE, RunSpec, model_location, run_folder_name

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_location(value: str | Path, marker: str, what: str, run: str) -> None:
    path = Path(value).expanduser()
    if path.exists():
        if not (path / marker).is_file():
            raise SafeEraserError(f"{path}: run '{run}': not a {what} folder ({marker} missing)")
    elif not _HUB_ID.match(str(value)):
        raise SafeEraserError(f"{path}: run '{run}': {what} folder not found")


def check_runs(runs: Sequence[RunSpec]) -> None:
    """Fail early, one line each, on bad run definitions (before any model loads)."""
    if not runs:
        raise SafeEraserError("no runs to evaluate")
    folders = Counter(run_folder_name(run.name) for run in runs)
    duplicates = [name for name, count in folders.items() if count > 1]
    if duplicates:
        raise SafeEraserError(f"run names must be unique; repeated: {', '.join(duplicates)}")
    for run in runs:
        _check_location(run.model, "config.json", "model", run.name)
        if run.adapter is not None:
            _check_location(run.adapter, "adapter_config.json", "PEFT adapter", run.name)


def check_runs_served(runs: Sequence[RunSpec], template: str) -> None:
    """The template and each run's model, as the plugin serves them (``integration.template_match``): a template of
    another family, or a model lacking what the template's plugin reads, is refused before any model loads."""
    from ..integration.template_match import check_template_serves_model  # imports LLaMA-Factory

    for run in runs:
        check_template_serves_model(template, model_location(run.model))


def check_not_finished(runs: Sequence[RunSpec], out_dir: str | Path) -> None:
    """Refuse a run whose folder ``<out_dir>/<run name>/`` already holds a results.json (a finished run's numbers
    are never replaced silently; ``overwrite=true`` replaces them)."""
    for run in runs:
        folder = Path(out_dir) / run_folder_name(run.name)
        if (folder / RESULTS_FILE).is_file():
            raise SafeEraserError(
                f"{folder}: already holds the results of run '{run.name}' ({RESULTS_FILE}); pass overwrite=true "
                "to replace them, or choose another run_name or output_dir"
            )
