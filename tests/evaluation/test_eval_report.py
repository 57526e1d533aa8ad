"""report.md and the plot from hand-made results.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.plot import build_figure, method_groups, plot_title
from llamafactory_safeeraser.evaluation.report import write_report
from llamafactory_safeeraser.evaluation.results import RESULTS_FORMAT, find_run_folders, load_run_results, pd_pairs
from llamafactory_safeeraser.evaluation.specificity import BENCHMARKS, SPECIFICITY_FILE, summarize_specificity


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
    assert f"![{plot_title()}](report.png)" in report
    assert plot_title() == "SARR, ASR and ROUGE-L per method, without and with prompt decouple (PD)"
    assert "Spec" not in report  # no run has specificity results


def test_report_without_plottable_runs_has_no_plot(tmp_path: Path) -> None:
    run = results("A", None, None, judge="openai")
    run["summary"]["rouge_l_recall"] = None  # none of the plotted numbers (SARR, ASR eff, ROUGE-L)
    folders = write_runs(tmp_path, [run])
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


def specificity_file(folder: Path, scores: dict[str, float], limit: int | None = None) -> None:
    """specificity.json as summarize_specificity writes it from lmms-eval results documents."""
    from llamafactory_safeeraser.evaluation.results import RunSpec
    from llamafactory_safeeraser.evaluation.specificity import SpecificitySettings

    raw = {}
    for benchmark in BENCHMARKS:
        if benchmark.name in scores:
            value = scores[benchmark.name] * benchmark.scale
            raw[benchmark.task] = {"results": {benchmark.task: {f"{benchmark.metric},none": value}}}
    summary = summarize_specificity(RunSpec(folder.name, "models/llava"), raw, SpecificitySettings(limit=limit))
    (folder / SPECIFICITY_FILE).write_text(json.dumps(summary))


def test_report_adds_specificity_when_a_run_has_it(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, [results("GA", 0.1, 0.9), results("GA+PD", 0.1, 0.3), results("PO", 0.2, 0.8)])
    seven = {"GQA": 0.5, "VizWiz": 0.25, "ScienceQA-IMG": 0.75, "VQAv2": 0.625, "POPE": 0.875, "MM-Vet": 0.3,
             "MMBench": 0.6}  # fmt: skip
    specificity_file(folders[0], seven)
    specificity_file(folders[1], {"GQA": 0.4, "POPE": 0.8})  # two of seven: no Spec
    report = write_report(folders, tmp_path / "report.md").read_text()
    mean = 100 * sum(seven.values()) / 7
    assert (
        "| Run | ASR eff ↓ | RR eff ↑ | ASR gen ↓ | RR gen ↑ | ROUGE-L ↑ | Judge score ↑ | SARR ↓ | Spec ↑ |" in report
    )
    assert f"| GA | 10.0 | 50.0 | 25.0 | n/a | 61.6 | 82.8 | 90.0 | {mean:.1f} |" in report
    assert "| GA+PD | 10.0 | 50.0 | 25.0 | n/a | 61.6 | 82.8 | 30.0 | n/a |" in report
    assert "| Run | GQA | VizWiz | ScienceQA-IMG | VQAv2 | POPE | MM-Vet | MMBench | Spec ↑ |" in report
    assert f"| GA | 50.0 | 25.0 | 75.0 | 62.5 | 87.5 | 30.0 | 60.0 | {mean:.1f} |" in report
    assert "| GA+PD | 40.0 | n/a | n/a | n/a | 80.0 | n/a | n/a | n/a |" in report
    assert "| PO | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in report


def test_plot_pairs_each_method_and_no_label_overlaps() -> None:
    def run(name: str, asr: float | None, sarr: float | None, rouge: float) -> dict:
        return {"run": {"name": name}, "summary": {"asr_eff": asr, "sarr": sarr, "rouge_l_recall": rouge}}

    runs = [run("vanilla", 0.95, 0.02, 0.6)]
    for i, method in enumerate(["GA", "GD", "KL", "PO", "NPO", "SimNPO", "IdkDPO", "RMU"]):
        runs += [run(method, 0.0, 1.0, 0.1 * i), run(f"{method}+PD", 0.05 * i, 0.99 - 0.1 * i, 0.1 * i)]
    runs.append(run("OnlyPD+PD", None, None, 0.5))
    assert [(method, sorted(variants)) for method, variants in method_groups(runs)][:3] == [
        ("vanilla", [False]),
        ("GA", [False, True]),
        ("GD", [False, True]),
    ]
    figure = build_figure(runs)
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        texts = [figure._suptitle, *figure.legends[0].get_texts()]
        for ax in figure.axes:
            texts += [ax.title, *ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels()]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
        sarr_panel = figure.axes[0]
        labels = [t.get_text() for t in sarr_panel.texts]
        assert labels.count("100") == 8 and "n/a" in labels  # each method's SARR without PD, OnlyPD's missing one
        overlaps = [
            (a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)
        ]
        assert overlaps == []
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)


def test_report_refuses_two_runs_of_one_name(tmp_path: Path) -> None:
    first = write_runs(tmp_path / "a", [results("GA", 0.1, 0.9)])
    second = write_runs(tmp_path / "b", [results("GA", 0.2, 0.3), results("PO", 0.2, 0.3)])
    with pytest.raises(SafeEraserError, match=r"b/GA/results.json: run name 'GA' is also the run of .*a/GA") as error:
        write_report([*first, *second], tmp_path / "out" / "report.md")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing written
