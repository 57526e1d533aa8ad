"""`safeeraser demo --attacks`: the eval keys each seed's eval.yaml holds, the run folders its evaluation writes,
and the Robustness section over seeds from hand-made results.json files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

import yaml
from llamafactory_safeeraser.demo import DemoSettings
from llamafactory_safeeraser.demo.eval_config import EVAL_CONFIG, eval_folders, eval_keys, write_eval_config
from llamafactory_safeeraser.demo.pipeline import render_report, write_robustness
from llamafactory_safeeraser.demo.settings import ATTACK_TASKS, HEADLINE_MODELS
from llamafactory_safeeraser.evaluation.results import RESULTS_FILE, RESULTS_FORMAT, run_folder_name
from llamafactory_safeeraser.evaluation.runner import EvalSettings
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig

QUANTIZATION_KEY = any(field.name == "quantization_bits" for field in dataclasses.fields(EvalSettings))
ATTACKED = DemoSettings(attacks=HEADLINE_MODELS)


def test_plain_eval_config_is_what_the_demo_evaluated_before(tmp_path: Path):
    settings = DemoSettings(seeds=(233,))
    paths = {"data": tmp_path / "data", "eval": tmp_path / "eval"}
    read_back = write_eval_config(settings, 234, paths)
    assert read_back == EvalSettings(
        data_dir=paths["data"], judge=JudgeConfig(), harmful_samples=1, max_gen_toks=40, batch_size=64, seed=234
    )
    written = yaml.safe_load((tmp_path / "eval" / EVAL_CONFIG).read_text())
    assert written["tasks"] == ["safeeraser"] and "quantization_bits" not in written


def test_attacks_add_the_attack_group_and_both_quantizations(tmp_path: Path):
    keys = eval_keys(ATTACKED, 233, tmp_path, attacked=True)
    assert keys["tasks"] == ["safeeraser", "safeeraser_attacks"] and ATTACK_TASKS == ("safeeraser_attacks",)
    assert keys["quantization_bits"] == [8, 4] and keys["quantized_tasks"] == ["safeeraser"]  # quantized: plain
    plain = eval_keys(DemoSettings(), 233, tmp_path)
    assert eval_keys(ATTACKED, 233, tmp_path) == plain  # the models --attacks does not name
    assert {k: v for k, v in keys.items() if k not in ("tasks", "quantization_bits", "quantized_tasks")} == {
        k: v for k, v in plain.items() if k != "tasks"
    }


@pytest.mark.skipif(not QUANTIZATION_KEY, reason="the eval key quantization_bits arrives with the quantization work")
def test_attacks_eval_config_reads_back_as_eval_settings(tmp_path: Path):
    read_back = write_eval_config(ATTACKED, 233, {"data": tmp_path, "eval": tmp_path / "eval"}, attacked=True)
    assert read_back.tasks == ("safeeraser", "safeeraser_attacks") and read_back.quantization_bits == (8, 4)
    assert read_back.tasks_of(4) == ("safeeraser",) and read_back.tasks_of(None) == read_back.tasks


def test_attacks_evaluate_each_run_quantized_too(tmp_path: Path):
    names = ["vanilla", "GA+PD"]
    assert eval_folders(DemoSettings(), tmp_path, names) == [tmp_path / "vanilla", tmp_path / "GA+PD"]
    assert [folder.name for folder in eval_folders(ATTACKED, tmp_path, names)] == [
        "vanilla", "GA+PD", run_folder_name("vanilla@int8"), run_folder_name("vanilla@int4"),
        run_folder_name("GA+PD@int8"), run_folder_name("GA+PD@int4"),
    ]  # fmt: skip
    only_pd = DemoSettings(attacks=("ga_pd",))  # quantized runs only of the attacked models
    assert [folder.name for folder in eval_folders(only_pd, tmp_path, names)] == [
        "vanilla", "GA+PD", run_folder_name("GA+PD@int8"), run_folder_name("GA+PD@int4"),
    ]  # fmt: skip


# ----- the Robustness section over seeds ---------------------------------------------------------------------
# seed -> run -> (ASR eff plain, ASR eff under the one typographic attack, ASR eff after int4)
MEASURED = {
    233: {"vanilla": (0.9, 1.0, 0.95), "GA": (0.1, 0.6, 0.7), "GA+PD": (0.2, 0.5, 0.8)},
    234: {"vanilla": (0.8, 0.9, 0.85), "GA": (0.0, 0.3, 0.2), "GA+PD": (0.1, 0.4, 0.6)},
    235: {"vanilla": (0.7, 0.8, 0.75), "GA": (0.2, 0.9, 0.3), "GA+PD": (0.3, 0.1, 0.4)},
}


def results(name: str, seed: int, asr_eff: float, typographic: float | None) -> dict:
    found = {
        "format": RESULTS_FORMAT,
        "run": {"name": name, "model": "m", "adapter": None},
        "summary": {"asr_eff": asr_eff, "rr_eff": 0.0, "sarr": 0.25},
        "tasks": {},
        "judge_failures": {"total": 0},
        "judge": {"config": {"name": "rule"}, "stats": {}},
        "settings": {"seed": seed},
    }
    if typographic is not None:
        entry = {"task": "t", "family": "typographic", "n": 4, "metrics": {"asr": typographic}, "stderr": {}}
        found["attacks"] = {"typographic_alone": {"efficacy": entry}}
    return found


def write_seed_results(out: Path) -> list[Path]:
    seed_dirs = []
    for seed, runs in MEASURED.items():
        seed_dirs.append(out / f"seed-{seed}")
        for name, (plain, attacked, int4) in runs.items():
            for run_name, asr, typographic in ((name, plain, attacked), (f"{name}@int4", int4, None)):
                folder = seed_dirs[-1] / "eval" / run_folder_name(run_name)
                folder.mkdir(parents=True)
                (folder / RESULTS_FILE).write_text(json.dumps(results(run_name, seed, asr, typographic)))
            int8 = seed_dirs[-1] / "eval" / run_folder_name(f"{name}@int8")
            int8.mkdir()
            (int8 / RESULTS_FILE).write_text(json.dumps(results(f"{name}@int8", seed, plain, None)))
    return seed_dirs


def expected(run: str, column: int) -> str:
    values = [MEASURED[seed][run][column] for seed in MEASURED]
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"


def test_robustness_section_is_over_every_seed(tmp_path: Path):
    settings = DemoSettings(seeds=tuple(MEASURED), runs=("ga", "ga_pd"), attacks=("vanilla", "ga", "ga_pd"))
    seed_dirs = write_seed_results(tmp_path)
    lines = write_robustness(settings, seed_dirs, [], tmp_path / "report.md")
    start = lines.index("### ASR on the forget set (efficacy) ↓")
    assert lines[start + 2] == "| Run | plain | typographic | int8 | int4 |"
    assert lines[start + 5] == f"| GA | {expected('GA', 0)} | {expected('GA', 1)} | {expected('GA', 0)} | " \
        f"{expected('GA', 2)} |"  # fmt: skip
    assert lines[start + 5] == "| GA | 10.0 ± 10.0 | 60.0 ± 30.0 | 10.0 ± 10.0 | 40.0 ± 26.5 |"
    assert lines[start + 6].startswith(f"| GA+PD | {expected('GA+PD', 0)} | {expected('GA+PD', 1)} |")
    assert (tmp_path / "report_robustness.png").read_bytes()[:4] == b"\x89PNG"
    report = render_report(settings, {}, [], None, lines)
    assert report.endswith("\n".join(lines) + "\n") and "## Robustness" in report


# ----- the evaluation step: reused only when every folder it owes was written ---------------------------------
def test_evaluation_step_is_done_when_its_quantized_runs_are_written(monkeypatch, tmp_path: Path):
    from types import SimpleNamespace

    from llamafactory_safeeraser.demo import pipeline
    from llamafactory_safeeraser.demo.steps import StepCache
    from llamafactory_safeeraser.errors import SafeEraserError

    calls: list[list[str]] = []
    skip: set[str] = set()

    def evaluate_runs(specs, settings, out_dir, report, progress, overwrite):  # as with quantization_bits [8, 4]
        calls.append([spec.name for spec in specs])
        assert report is False and overwrite is True and settings.tasks == ("safeeraser", "safeeraser_attacks")
        for spec in specs:
            for name in (spec.name, f"{spec.name}@int8", f"{spec.name}@int4"):
                if name in skip:
                    continue
                folder = out_dir / run_folder_name(name)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / RESULTS_FILE).write_text(json.dumps(results(name, 233, 0.5, None)))
                progress(SimpleNamespace(run=SimpleNamespace(name=name), folder=folder))

    tasks = SimpleNamespace(tasks=("safeeraser", "safeeraser_attacks"))
    monkeypatch.setattr(pipeline, "write_eval_config", lambda settings, seed, paths, attacked=False: tasks)
    monkeypatch.setattr(pipeline, "evaluate_runs", evaluate_runs)
    settings = DemoSettings(seeds=(233,), runs=("ga",), attacks=("vanilla", "ga"))
    paths = {"eval": tmp_path / "eval", "vanilla": tmp_path / "vanilla", "runs": tmp_path / "runs"}
    cache = StepCache(tmp_path)

    def evaluate() -> dict:
        return pipeline.evaluate_seed(settings, 233, paths, lambda *a, **k: None, cache, "v", {"ga": "k"})

    skip.add("GA@int4")  # the evaluation stopped before GA's 4-bit run
    with pytest.raises(SafeEraserError, match=re.escape(f"{run_folder_name('GA@int4')}/results.json: not found")):
        evaluate()
    assert calls == [["vanilla", "GA"]]
    skip.clear()
    assert set(evaluate()) == {"vanilla", "GA"}
    assert calls[1] == ["GA"]  # the vanilla model's step was done; GA's was not
    evaluate()
    assert len(calls) == 2  # everything reused
    assert "## Robustness" in (paths["eval"] / "report.md").read_text()  # each seed's report has its section
