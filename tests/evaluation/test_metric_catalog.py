"""One declaration per metric: a metric added to ``metric_catalog.METRICS`` (one entry plus its function) reaches
the task files, lm-eval's aggregation, results.json, report.md and the plot; and the declarations give today's
tables exactly."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from lmeval_harness import aggregate_responses

from llamafactory_safeeraser.data.records import CATEGORIES
from llamafactory_safeeraser.evaluation import plot, report
from llamafactory_safeeraser.evaluation.results import RunSpec, headline, summarize
from llamafactory_safeeraser.lmeval_task import documents, metric_catalog
from llamafactory_safeeraser.lmeval_task.metric_catalog import Column, Metric
from llamafactory_safeeraser.lmeval_task.task_files import write_task_files
from llamafactory_safeeraser.tasks import TASK_DIR

SUFFIX = " and then some more words"


def longer_than_reference(doc: dict, response: str) -> float:
    return float(len(response.split()) > len(doc["reference"].split()))


LONGER = Metric(
    "answer_longer",
    "Longer",
    ("utility",),
    computed_from="the response has more words than the reference",
    higher_is_better=False,
    score=longer_than_reference,
    columns=(
        Column(
            "longer_utility",
            "utility",
            "Longer",
            per_category="Longer than the reference (UnharmPair questions)",
            plot_panel=(4, "Verbosity: answers longer than the reference"),
        ),
    ),
)


def test_the_declarations_give_the_tables_of_the_report() -> None:
    assert headline() == {
        "asr_eff": ("efficacy", "asr"),
        "rr_eff": ("efficacy", "rr"),
        "asr_gen": ("generality", "asr"),
        "rr_gen": ("generality", "rr"),
        "rouge_l_recall": ("utility", "rouge_l_recall"),
        "rouge_l_precision": ("utility", "rouge_l_precision"),
        "judge_score": ("utility", "judge_score"),
        "sarr": ("sarr", "sarr"),
    }
    assert [column.title for column in metric_catalog.main_table()] == [
        "ASR eff ↓", "RR eff ↑", "ASR gen ↓", "RR gen ↑", "ROUGE-L ↑", "Judge score ↑", "SARR ↓",
    ]  # fmt: skip
    assert [(column.kind, column.metric.name) for column, _ in report.category_tables()] == [
        ("efficacy", "asr"), ("efficacy", "rr"), ("generality", "asr"), ("generality", "rr"), ("sarr", "sarr"),
        ("utility", "rouge_l_recall"), ("utility", "judge_score"),
    ]  # fmt: skip
    assert [column.key for column in metric_catalog.plot_panels()] == ["sarr", "asr_eff", "rouge_l_recall"]
    assert metric_catalog.kind_metrics("sarr") == ("sarr", "sarr_refusal", "sarr_degenerate")
    assert metric_catalog.metric_names("utility", model_judge=False) == [
        "rouge_l_recall", "rouge_l_precision", "judge_score",
    ]  # fmt: skip
    assert (
        metric_catalog.verdict_labels("asr") == ("unsafe", "safe")
        and metric_catalog.verdict_labels("judge_score") is None
    )


def test_every_declaration_is_consistent() -> None:
    names = [m.name for m in metric_catalog.METRICS]
    keys = [column.key for column in metric_catalog.headline()]
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    for m in metric_catalog.METRICS:
        assert m.kinds and set(m.kinds) <= set(documents.TASK_KINDS), m.name
        assert all(column.kind in m.kinds for column in m.columns), m.name
    positions = [column.column.plot_panel[0] for column in metric_catalog.plot_panels()]
    assert len(set(positions)) == len(positions)


def test_an_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no SafeEraser metric 'nope'"):
        metric_catalog.metric("nope")


@pytest.fixture
def with_new_metric(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The catalog with LONGER added, and the task folder generated from it (a copy of the package's)."""
    monkeypatch.setattr(metric_catalog, "METRICS", (*metric_catalog.METRICS, LONGER))
    task_dir = tmp_path / "tasks"
    shutil.copytree(TASK_DIR, task_dir, ignore=shutil.ignore_patterns("__pycache__"))
    write_task_files(task_dir)
    return task_dir


def respond(doc: dict) -> str:
    """Hand-labelled: on Privacy the reference plus five words (longer), elsewhere the reference itself."""
    return doc["reference"] + SUFFIX if doc["category"] == "Privacy" else doc["reference"]


def aggregate_utility(task_dir: Path, metadata: dict) -> dict:
    """lm-eval's own results for the utility group on the hand-written responses."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir), include_defaults=False, metadata=metadata)
    return aggregate_responses(manager.load(["safeeraser_utility"]), respond)


def test_a_new_metric_reaches_results_report_and_plot(with_new_metric: Path, synthetic_dir: Path, tmp_path: Path):
    template = (with_new_metric / "utility" / "_template_yaml").read_text()
    assert "- metric: answer_longer\n  aggregation: mean\n  higher_is_better: false\n" in template
    assert (
        "- metric: answer_longer\n  weight_by_size: true\n"
        in (with_new_metric / "utility" / "_safeeraser_utility.yaml").read_text()
    )
    assert "answer_longer" not in (with_new_metric / "sarr" / "_template_yaml").read_text()

    metadata = {"data_dir": str(synthetic_dir), "harmful_samples": 1}
    raw = aggregate_utility(with_new_metric, metadata)
    counts = {c: len(documents.task_docs("utility", metadata, c)) for c in CATEGORIES}
    share = counts["Privacy"] / sum(counts.values())
    assert raw["results"]["safeeraser_utility"]["answer_longer,none"] == pytest.approx(share)

    settings = SimpleNamespace(
        harmful_samples=1, limit=None, batch_size=1, template="llava", image_max_pixels=None, image_min_pixels=None,
        sarr_question="harmful", seed=1, device="cpu", tasks=("safeeraser_utility",),
    )  # fmt: skip
    options = documents.TaskOptions.from_metadata(metadata)
    results = summarize(RunSpec("GA", "models/x"), raw, settings, options)
    assert results["summary"]["longer_utility"] == pytest.approx(share)
    utility = results["tasks"]["utility"]
    assert utility["metrics"]["answer_longer"] == pytest.approx(share)
    assert utility["per_category"]["Privacy"]["answer_longer"] == 1.0
    assert utility["per_category"]["Violence"]["answer_longer"] == 0.0
    assert utility["per_category"]["Privacy"]["rouge_l_recall"] == 1.0  # the declared functions still score
    assert results["summary"]["sarr"] is None  # not run

    folder = tmp_path / "runs" / "GA"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    text = report.write_report([folder], tmp_path / "report.md").read_text()
    assert (
        "| Run | ASR eff ↓ | RR eff ↑ | ASR gen ↓ | RR gen ↑ | ROUGE-L ↑ | Judge score ↑ | Longer ↓ | SARR ↓ |" in text
    )
    assert f"| {100 * share:.1f} | n/a |" in text  # the new column with the utility ones, then SARR (not run)
    assert "### Longer than the reference (UnharmPair questions) ↓" in text
    assert "| GA | 0.0 | 0.0 | 100.0 | 0.0 | 0.0 | 0.0 |" in text  # per category (Violence, Weapon, Privacy, ...)
    assert "SARR, ASR, ROUGE-L and Longer per method" in text  # the plot's title names the new panel

    figure = plot.build_figure([results])
    try:
        titles = [ax.get_title(loc="left") for ax in figure.axes]
        assert titles[-1] == "Verbosity: answers longer than the reference (%), lower is better"
        assert len(titles) == 4
        labels = [t.get_text() for t in figure.axes[-1].texts]
        assert labels == [f"{100 * share:.0f}"]
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)


def test_a_metric_that_is_not_a_rate_is_shown_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    words = replace(LONGER, name="words", percent=False, columns=(replace(LONGER.columns[0], key="words"),))
    monkeypatch.setattr(metric_catalog, "METRICS", (*metric_catalog.METRICS, words))
    column = next(h for h in metric_catalog.main_table() if h.key == "words")
    assert report.shown(column, 12.5) == "12.5" and report.shown(column, None) == "n/a"
    assert plot.panel_title(column) == "Verbosity: answers longer than the reference, lower is better"
