"""report.md and the plot from hand-made results.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.report import pd_pairs, write_report
from llamafactory_safeeraser.evaluation.results import RESULTS_FORMAT, find_run_folders, load_run_results


def results(
    name: str,
    asr_eff: float | None,
    sarr: float | None,
    failures: int = 0,
    weapon_asr: float | None = None,
    judge: str = "rule",
) -> dict:
    summary = {
        "asr_eff": asr_eff,
        "rr_eff": 0.5,
        "asr_gen": 0.25,
        "rr_gen": None,
        "rouge_l_recall": 0.616,
        "judge_score": 0.8284,
        "sarr": sarr,
    }
    return {
        "format": RESULTS_FORMAT,
        "run": {"name": name, "model": "models/llava", "adapter": f"saves/{name}"},
        "summary": summary,
        "tasks": {"efficacy": {"per_category": {"Violence": {"asr": 0.125, "rr": 1.0}, "Weapon": {"asr": weapon_asr}}}},
        "judge_failures": {"efficacy": failures, "generality": 0, "sarr": 0, "utility": 0, "total": failures},
        "judge": {"config": {"name": judge, "model": None if judge == "rule" else "judge-m"}, "stats": {}},
        "settings": {"harmful_samples": 3, "generation_kwargs": {"max_gen_toks": 512}, "limit": None, "seed": 233},
    }


def write_runs(root: Path, runs: list[dict]) -> list[Path]:
    folders = []
    for run in runs:
        folder = root / run["run"]["name"]
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(run))
        folders.append(folder)
    return folders


def test_report_tables_pd_effect_and_plot(tmp_path: Path) -> None:
    folders = write_runs(
        tmp_path,
        [
            results("GA", 0.0, 1.0),
            results("GA+PD", 0.028, 0.28, failures=2),
            results("PO", 0.001, 1.0),
            results("PO+PD", 0.002, 0.3, weapon_asr=0.5),
            results("KL|x", None, None),
        ],
    )
    report_path = write_report(folders, tmp_path / "out" / "report.md")
    report = report_path.read_text()
    assert "| GA+PD | 2.8 | 50.0 | 25.0 | n/a | 61.6 | 82.8 | 28.0 |" in report  # percentages, one decimal
    assert "| KL\\|x | n/a | 50.0 | 25.0 | n/a | 61.6 | 82.8 | n/a |" in report  # pipes escaped, n/a kept
    assert "| GA | 100.0 | 28.0 | -72.0% | 0.0 | 2.8 | 61.6 | 61.6 |" in report
    assert "| PO | 100.0 | 30.0 | -70.0% |" in report
    assert "Mean relative SARR reduction with PD: 71.0%." in report
    assert "| PO+PD | 12.5 | 50.0 | n/a | n/a | n/a | n/a |" in report  # per-category ASR eff: Violence, Weapon
    assert "| GA+PD | 2 | 0 | 0 | 0 | 2 |" in report  # judge failures
    assert "| GA | models/llava | saves/GA | rule | 3 | 512 | - | 233 |" in report
    assert "lexical proxies" in report
    assert (tmp_path / "out" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "![SARR against ASR on the forget set](report.png)" in report


def test_report_without_plottable_runs_has_no_plot(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, [results("A", None, 0.5, judge="openai")])
    report = write_report(folders, tmp_path / "r.md").read_text()
    assert "report.png" not in report and not (tmp_path / "r.png").exists()
    assert "judge: openai" in report and "openai (judge-m)" in report and "lexical proxies" not in report


def test_pd_pairs() -> None:
    # the method must be present under exactly its name; "+PD" is matched case-insensitively, spaces allowed
    assert pd_pairs(["GA", "GA+PD", "po", "PO + pd", "KL+PD", "vanilla"]) == [("GA", "GA+PD")]
    assert pd_pairs(["PO", "PO + pd"]) == [("PO", "PO + pd")]
    assert pd_pairs(["GA+PD"]) == [] and pd_pairs(["NPO", "NPO+PD"]) == [("NPO", "NPO+PD")]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"format": "other"}', "not a SafeEraser results file"), ("[1]", "format")],
)
def test_bad_results_files_are_clear_errors(content: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(SafeEraserError, match=message):
        load_run_results(tmp_path)


def test_find_run_folders_oldest_first(tmp_path: Path) -> None:
    import os

    folders = write_runs(tmp_path, [results("b", 0.1, 0.1), results("a", 0.1, 0.1)])
    os.utime(folders[0] / "results.json", (1, 1))
    (tmp_path / "not_a_run").mkdir()
    assert find_run_folders(tmp_path) == [tmp_path / "b", tmp_path / "a"]
