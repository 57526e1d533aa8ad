"""The ``safeeraser`` group as lm-eval builds it: generated task files, one group per kind with a subtask per
category, lm-eval's own aggregation of hand-labelled responses (its printed table, its standard errors, its
logged samples) and ``results.summarize`` reading them. No model: responses are written by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from lmeval_harness import aggregate_responses

from llamafactory_safeeraser.data.records import CATEGORIES
from llamafactory_safeeraser.evaluation.results import RunSpec, samples_jsonl, summarize
from llamafactory_safeeraser.lmeval_task import documents, metric_catalog
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig
from llamafactory_safeeraser.lmeval_task.task_files import SHARED_TEMPLATE, render_task_files
from llamafactory_safeeraser.tasks import TASK_DIR

KINDS = documents.TASK_KINDS
REFUSAL = "I'm sorry, but I can't help with that."
NEUTRAL = "The picture shows a quiet street with trees and a small shop on the corner."


def test_committed_task_files_are_the_generated_ones() -> None:
    generated = render_task_files()
    on_disk = {
        str(path.relative_to(TASK_DIR))
        for path in TASK_DIR.rglob("*")
        if path.suffix == ".yaml" or path.name == SHARED_TEMPLATE
    }
    assert on_disk == {*generated, SHARED_TEMPLATE}  # no stale task file left behind
    for relative, text in generated.items():
        assert (TASK_DIR / relative).read_text() == text, f"{relative}: run python -m {render_task_files.__module__}"


@pytest.fixture(scope="module")
def loaded(synthetic_dir: Path):
    """lm-eval's TaskManager loading the whole group on the synthetic data (2 samples per harmful question)."""
    from lm_eval.tasks import TaskManager

    metadata = {"data_dir": str(synthetic_dir), "harmful_samples": 2}
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    return metadata, manager.load(["safeeraser"])


def test_one_group_per_kind_with_a_subtask_per_category(loaded) -> None:
    from lm_eval.api.metrics import mean

    metadata, task_dict = loaded
    groups, tasks = task_dict["groups"], task_dict["tasks"]
    assert groups["safeeraser"].child_names == [f"safeeraser_{kind}" for kind in KINDS]
    for kind in KINDS:
        group = groups[f"safeeraser_{kind}"]
        assert group.child_names == [documents.category_task(kind, category) for category in CATEGORIES]
        assert [agg.metric for agg in group.aggregate_metric_list] == metric_catalog.metric_names(kind)
        assert all(agg.weight_by_size for agg in group.aggregate_metric_list)
        sizes = []
        for category in CATEGORIES:
            task = tasks[documents.category_task(kind, category)]
            docs = list(task.eval_docs)
            assert docs and {doc["category"] for doc in docs} == {category}
            assert docs == documents.task_docs(kind, metadata, category)
            # lm-eval's registered `mean`: the aggregation it knows the standard error of
            assert all(task.aggregation()[name] is mean for name in metric_catalog.metric_names(kind))
            sizes.append(len(docs))
        assert sum(sizes) == len(documents.task_docs(kind, metadata))


def respond(doc: dict) -> str:
    """Hand-labelled behaviour: reproduce the forget target on Violence, refuse on Weapon, else a neutral
    sentence; on the SD image refuse on Sex only; answer UnharmPair questions exactly on Privacy."""
    if doc["task_kind"] in documents.HARMFUL_KINDS:
        return {"Violence": doc["reference"], "Weapon": REFUSAL}.get(doc["category"], NEUTRAL)
    if doc["task_kind"] == "sarr":
        return REFUSAL if doc["category"] == "Sex" else doc["reference"]
    return doc["reference"] if doc["category"] == "Privacy" else NEUTRAL


@pytest.fixture(scope="module")
def aggregated(loaded):
    """lm-eval's own results (aggregation, groups, logged samples) for the hand-written responses: what
    simple_evaluate does after generation, run on responses instead of a model's."""
    _, task_dict = loaded
    return aggregate_responses(task_dict, respond)


def test_printed_table_has_a_value_and_a_standard_error_on_every_row(aggregated) -> None:
    from lm_eval.utils import make_table

    for column in ("results", "groups"):
        rows = [line for line in make_table(aggregated, column).splitlines()[2:] if line.strip()]
        cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
        assert cells and all(len(row) == 9 for row in cells)
        for row in cells:
            assert row[4] and row[6] and row[7] == "±"  # metric, value, a standard error follows
            float(row[6]), float(row[8])  # numbers, not N/A
    table = make_table(aggregated, "results")
    rows_per_kind = {kind: 1 + len(CATEGORIES) for kind in KINDS}  # the group and its six subtasks
    expected_rows = sum(
        n * len(metric_catalog.metric_names(kind, model_judge=False)) for kind, n in rows_per_kind.items()
    )
    assert len([line for line in table.splitlines()[2:] if line.strip()]) == expected_rows


def binomial_stderr(successes: int, n: int) -> float:
    """lm-eval's mean_stderr of n zeros and ones: the sample standard deviation over sqrt(n)."""
    p = successes / n
    return math.sqrt(p * (1 - p) * n / (n - 1) / n)


def test_summarize_reads_lm_evals_results_into_results_json(aggregated, loaded) -> None:
    metadata, _ = loaded
    options = documents.TaskOptions.from_metadata(metadata)
    settings = SimpleNamespace(
        harmful_samples=2,
        limit=None,
        batch_size=1,
        template="llava",
        image_max_pixels=None,
        image_min_pixels=None,
        sarr_question="harmful",
        seed=1,
        device="cpu",
        tasks=("safeeraser",),
    )
    results = summarize(RunSpec("GA", "models/x"), aggregated, settings, options)
    counts = {kind: {c: len(documents.task_docs(kind, metadata, c)) for c in CATEGORIES} for kind in KINDS}
    for kind in ("efficacy", "generality"):
        task, n = results["tasks"][kind], sum(counts[kind].values())
        assert task["n"] == n and task["task"] == f"safeeraser_{kind}"
        violence, weapon = counts[kind]["Violence"], counts[kind]["Weapon"]
        assert task["metrics"]["asr"] == pytest.approx(violence / n)
        assert task["metrics"]["rr"] == pytest.approx(weapon / n)
        assert task["stderr"]["asr"] == pytest.approx(binomial_stderr(violence, n))
        # lm-eval's group row: the same rate, with the standard error pooled within categories (0 here)
        group = aggregated["results"][f"safeeraser_{kind}"]
        assert group["asr,none"] == pytest.approx(violence / n) and group["asr_stderr,none"] == pytest.approx(0)
        per_category = task["per_category"]
        assert per_category["Violence"]["asr"] == 1.0 and per_category["Weapon"]["rr"] == 1.0
        sex = {"asr": 0.0, "rr": 0.0, "n": counts[kind]["Sex"], "judge_failures": 0, "stderr": {"asr": 0.0, "rr": 0.0}}
        assert per_category["Sex"] == sex
        assert per_category["Weapon"]["n"] == weapon
    sarr, n = results["tasks"]["sarr"], sum(counts["sarr"].values())
    assert sarr["metrics"]["sarr"] == pytest.approx(counts["sarr"]["Sex"] / n) == results["summary"]["sarr"]
    assert results["summary_stderr"]["sarr"] == pytest.approx(binomial_stderr(counts["sarr"]["Sex"], n))
    utility = results["tasks"]["utility"]["per_category"]
    assert utility["Privacy"]["rouge_l_recall"] == 1.0 and utility["Privacy"]["judge_score"] == 1.0
    assert results["judge_failures"] == {**dict.fromkeys(KINDS, 0), "total": 0}
    assert results["judge"]["config"] == json.loads(JudgeConfig().to_json())


def test_logged_samples_carry_the_judges_verdict_and_reason(aggregated) -> None:
    lines = [json.loads(line) for line in samples_jsonl(aggregated).splitlines()]
    assert len(lines) == sum(len(samples) for samples in aggregated["samples"].values())
    weapon = next(line for line in lines if line["task"] == "safeeraser_efficacy_weapon")
    assert weapon["judgements"]["rr"] == {"verdict": "refusal", "reason": "opens with a refusal"}
    assert weapon["judgements"]["asr"] == {"verdict": "safe", "reason": "opens with a refusal"}
    violence = next(line for line in lines if line["task"] == "safeeraser_generality_violence")
    assert violence["judgements"]["asr"]["verdict"] == "unsafe" and violence["scores"] == {"asr": 1.0, "rr": 0.0}
    sex = next(line for line in lines if line["task"] == "safeeraser_sarr_sex")
    assert sex["judgements"]["sarr"] == {"verdict": "refusal", "reason": "opens with a refusal"}
    # lm-eval's own sample record (what --log_samples writes) holds them in its document
    raw = aggregated["samples"]["safeeraser_efficacy_weapon"][0]
    assert raw["doc"]["judgements"]["rr"]["verdict"] == "refusal"
