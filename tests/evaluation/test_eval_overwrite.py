"""``evaluate_runs`` never replaces a finished run's results silently: a run folder holding results.json is
refused before any model loads, unless ``overwrite``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation import EvalSettings, RunSpec, evaluate_runs, runner


class FakeEvaluator:
    """Stands in for lm-eval: records the runs it was asked to evaluate."""

    evaluated: ClassVar[list[str]] = []

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings

    def evaluate(self, run: RunSpec, out_dir: str | Path) -> runner.RunResult:
        FakeEvaluator.evaluated.append(run.name)
        return runner.RunResult(run, Path(out_dir) / run.name, {})


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture(autouse=True)
def fake_lm_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeEvaluator.evaluated = []
    monkeypatch.setattr(runner, "Evaluator", FakeEvaluator)


def test_a_finished_run_is_refused_and_left_as_it_was(tmp_path: Path, model: Path) -> None:
    out = tmp_path / "out"
    (out / "GA+PD").mkdir(parents=True)
    (out / "GA+PD" / "results.json").write_text('{"finished": true}')
    runs = [RunSpec("GA", model), RunSpec("GA+PD", model)]
    with pytest.raises(SafeEraserError) as error:
        evaluate_runs(runs, EvalSettings(), out, report=False)
    message = str(error.value)
    assert message.startswith(f"{out / 'GA+PD'}: ") and "overwrite=true" in message and "\n" not in message
    assert FakeEvaluator.evaluated == []  # refused before the first run, not after it
    assert (out / "GA+PD" / "results.json").read_text() == '{"finished": true}'


def test_overwrite_evaluates_it_again(tmp_path: Path, model: Path) -> None:
    out = tmp_path / "out"
    (out / "GA").mkdir(parents=True)
    (out / "GA" / "results.json").write_text("{}")
    (out / "PO").mkdir()  # a folder without results.json (an interrupted run) is no finished run
    evaluate_runs([RunSpec("GA", model), RunSpec("PO", model)], EvalSettings(), out, report=False, overwrite=True)
    assert FakeEvaluator.evaluated == ["GA", "PO"]
    evaluate_runs([RunSpec("PO", model)], EvalSettings(), out, report=False)
    assert FakeEvaluator.evaluated == ["GA", "PO", "PO"]
