"""End to end: real lm-eval runs of the ``safeeraser`` group on the tiny LLaVA (CPU), the runner's
files and report, the ``safeeraser eval`` / ``report`` commands, and the plain ``lm-eval`` CLI."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from llamafactory_safeeraser.data.records import CATEGORIES
from llamafactory_safeeraser.evaluation import EvalSettings, RunSpec, evaluate_runs
from llamafactory_safeeraser.evaluation.plot import plot_title
from llamafactory_safeeraser.evaluation.results import RESULTS_FORMAT, headline
from llamafactory_safeeraser.lmeval_task import metric_catalog, scoring
from llamafactory_safeeraser.lmeval_task.documents import category_task, task_docs
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig
from llamafactory_safeeraser.tasks import TASK_DIR

pytestmark = pytest.mark.slow
KINDS = ("efficacy", "generality", "sarr", "utility")


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models gain nothing from threads, and two threads on a busy 2-core box crawl."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def evaluated(
    single_thread,
    tiny_model_dir: Path,
    lora_adapter: Path,
    synthetic_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Two runs ("GA" = base model, "GA+PD" = base + adapter) in one process, the whole group, no limit."""
    out = tmp_path_factory.mktemp("eval") / "out"
    settings = EvalSettings(data_dir=synthetic_dir, harmful_samples=2, max_gen_toks=8, batch_size=16, seed=11)
    results = evaluate_runs(
        [RunSpec("GA", tiny_model_dir), RunSpec("GA+PD", tiny_model_dir, lora_adapter)], settings, out
    )
    assert [result.folder.name for result in results] == ["GA", "GA+PD"]
    return out


def read_samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("run", ["GA", "GA+PD"])
def test_metrics_match_the_logged_samples_rescored(evaluated: Path, run: str) -> None:
    from lm_eval.api.metrics import mean_stderr

    results = json.loads((evaluated / run / "results.json").read_text())
    samples = read_samples(evaluated / run)
    assert results["format"] == RESULTS_FORMAT
    judge_json = JudgeConfig(**results["judge"]["config"]).to_json()
    by_kind: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for line in samples:
        skipped = ("task", "doc_id", "response", "scores", "judgements")
        doc = {key: value for key, value in line.items() if key not in skipped}
        doc["judge"] = judge_json
        rescored = scoring.score_response(doc, line["response"])
        assert rescored.metrics() == line["scores"] and rescored.judgements == line["judgements"]
        assert line["task"] == category_task(line["task_kind"], line["category"])
        by_kind[line["task_kind"]].append((doc, rescored.values))

    expected_sizes = {"efficacy": 24 * 4 * 2, "generality": 12 * 4 * 2, "sarr": 12 * 4, "utility": 12 * 4}
    for kind in KINDS:
        rows = by_kind[kind]
        task = results["tasks"][kind]
        assert task["n"] == len(rows) == expected_sizes[kind]
        for metric in metric_catalog.kind_metrics(kind):
            values = [row[metric] for _, row in rows]
            assert task["metrics"][metric] == pytest.approx(sum(values) / len(values))
            assert task["stderr"][metric] == pytest.approx(mean_stderr(values))
            # lm-eval's group row: the same rate (no judge failures here)
            assert results["lm_eval"]["results"][f"safeeraser_{kind}"][f"{metric},none"] == pytest.approx(
                task["metrics"][metric]
            )
        assert task["metrics"]["judge_failures"] == 0
        for category in CATEGORIES:
            in_category = [row for doc, row in rows if doc["category"] == category]
            assert task["per_category"][category]["n"] == len(in_category) > 0
            for metric in metric_catalog.kind_metrics(kind):
                values = [row[metric] for row in in_category]
                assert task["per_category"][category][metric] == pytest.approx(sum(values) / len(values))
                if len(values) > 1:
                    assert task["per_category"][category]["stderr"][metric] == pytest.approx(mean_stderr(values))
    for column, (kind, metric) in headline().items():
        assert results["summary"][column] == results["tasks"][kind]["metrics"][metric] is not None
        assert results["summary_stderr"][column] == results["tasks"][kind]["stderr"][metric] is not None
    # The tiny random model's sampled text is gibberish: SARR must mostly see that (degenerate), not call it normal.
    # (Mostly: 8 sampled tokens of in-vocabulary word salad can pass the offline checks; docs/evaluation.md.)
    assert results["summary"]["sarr"] >= 0.75 and results["tasks"]["sarr"]["metrics"]["sarr_degenerate"] >= 0.75


def test_generation_follows_the_settings(evaluated: Path, synthetic_dir: Path) -> None:
    results = json.loads((evaluated / "GA" / "results.json").read_text())
    assert results["settings"]["generation_kwargs"] == {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.9,
        "max_gen_toks": 8,
        "until": [],
    }
    assert results["settings"]["seed"] == 11 and results["settings"]["harmful_samples"] == 2
    assert results["settings"]["data_files"]["val"] == str((synthetic_dir / "all_val.json").resolve())
    assert results["run"]["adapter"] is None
    samples = read_samples(evaluated / "GA")
    efficacy = [line for line in samples if line["task_kind"] == "efficacy"]
    pairs = list(zip(efficacy[0::2], efficacy[1::2], strict=True))
    assert all(a["prompt"] == b["prompt"] and (a["sample"], b["sample"]) == (0, 1) for a, b in pairs)
    # Sampling, not greedy decoding: the two samples of a question differ.
    assert sum(a["response"] != b["response"] for a, b in pairs) > len(pairs) // 2


def test_adapter_is_applied(evaluated: Path, lora_adapter: Path) -> None:
    base = read_samples(evaluated / "GA")
    adapted = read_samples(evaluated / "GA+PD")
    assert json.loads((evaluated / "GA+PD" / "results.json").read_text())["run"]["adapter"] == str(lora_adapter)
    assert [line["prompt"] for line in base] == [line["prompt"] for line in adapted]
    assert sum(a["response"] != b["response"] for a, b in zip(base, adapted, strict=True)) > len(base) // 2


def test_report_compares_runs_with_tables_and_plot(evaluated: Path) -> None:
    report = (evaluated / "report.md").read_text()
    results = {run: json.loads((evaluated / run / "results.json").read_text()) for run in ("GA", "GA+PD")}
    header = "| Run | ASR eff ↓ | RR eff ↑ | ASR gen ↓ | RR gen ↑ | ROUGE-L ↑ | Judge score ↑ | SARR ↓ |"
    assert header in report
    for run, result in results.items():
        summary = result["summary"]
        row = (
            f"| {run} | "
            + " | ".join(
                f"{100 * summary[key]:.1f}"
                for key in ("asr_eff", "rr_eff", "asr_gen", "rr_gen", "rouge_l_recall", "judge_score", "sarr")
            )
            + " |"
        )
        assert row in report
    before, after = results["GA"]["summary"]["sarr"], results["GA+PD"]["summary"]["sarr"]
    pd_row = f"| GA | {100 * before:.1f} | {100 * after:.1f} | {100 * (after - before) / before:+.1f}% |"
    assert "## Effect of prompt decouple (PD)" in report and pd_row in report
    assert "### ASR on the forget set (efficacy) ↓" in report and "| Run | " + " | ".join(CATEGORIES) + " |" in report
    assert f"![{plot_title()}](report.png)" in report
    assert (evaluated / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_and_report_commands(
    single_thread, evaluated: Path, tiny_model_dir: Path, lora_adapter: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    overrides = {  # yaml/eval_tiny.yaml, pointed at this test's model, adapter and data, and shortened
        "model_name_or_path": tiny_model_dir,
        "adapter_name_or_path": lora_adapter,
        "data_dir": synthetic_dir,
        "output_dir": out,
        "run_name": "PO+PD",
        "max_new_tokens": 6,
        "limit": 1,
        "batch_size": 6,
        "seed": 5,
    }
    command = ["safeeraser", "eval", str(REPO / "yaml" / "eval_tiny.yaml")]
    proc = run_cli(command + [f"{key}={value}" for key, value in overrides.items()], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {out / 'report.md'}" in proc.stdout
    # lm-eval's warnings that every run of our tasks triggers are silenced (EXPECTED_LM_EVAL_WARNINGS)
    assert "Custom kwargs can be passed" not in proc.stderr and "neither marked as CausalLM" not in proc.stderr
    results = json.loads((out / "PO+PD" / "results.json").read_text())
    per_kind = len(CATEGORIES)  # limit 1: one document per category subtask
    assert {kind: results["tasks"][kind]["n"] for kind in KINDS} == dict.fromkeys(KINDS, per_kind)
    assert results["settings"]["limit"] == 1 and results["settings"]["generation_kwargs"]["max_gen_toks"] == 6
    assert results["settings"]["harmful_samples"] == 1 and results["judge"]["config"]["name"] == "rule"  # the file's
    assert results["run"]["adapter"] == str(lora_adapter)
    assert len(read_samples(out / "PO+PD")) == 4 * per_kind
    assert "| PO+PD |" in (out / "report.md").read_text()

    combined = tmp_path / "combined" / "report.md"
    proc = run_cli(
        ["safeeraser", "report", "--runs", str(evaluated / "GA"), str(out / "PO+PD"), "--out", str(combined)],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = combined.read_text()
    assert "| GA |" in text and "| PO+PD |" in text and "Effect of prompt decouple" not in text  # no X / X+PD pair
    assert combined.with_suffix(".png").is_file()


def test_plain_lm_eval_cli(tiny_model_dir: Path, lora_adapter: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    """The command users run: lm-eval with our include path, data chosen through --metadata."""
    metadata = json.dumps({"data_dir": str(synthetic_dir), "harmful_samples": 1})
    proc = run_cli(
        [
            "lm-eval",
            "--model",
            "hf-multimodal",
            "--model_args",
            f"pretrained={tiny_model_dir},max_images=1,peft={lora_adapter}",
            "--device",
            "cpu",
            "--include_path",
            str(TASK_DIR),
            "--tasks",
            "safeeraser",
            "--metadata",
            metadata,
            "--gen_kwargs",
            "max_gen_toks=4",
            "--limit",
            "2",
            "--batch_size",
            "8",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_file = next((tmp_path / "out").glob("*/results_*.json"))
    document = json.loads(results_file.read_text())
    results = document["results"]
    assert document["group_subtasks"]["safeeraser"] == [f"safeeraser_{kind}" for kind in KINDS]
    for kind in KINDS:
        names = [f"safeeraser_{kind}"] + [category_task(kind, category) for category in CATEGORIES]
        assert document["group_subtasks"][names[0]] == names[1:]
        for name in names:
            for metric in metric_catalog.metric_names(kind, model_judge=False):  # a value and a standard error each
                assert isinstance(results[name][f"{metric},none"], float)
                assert isinstance(results[name][f"{metric}_stderr,none"], float)
            assert "judge_failure_rate,none" not in results[name]  # the rule judge cannot fail
    # the printed table: a value and a standard error on every row
    rows = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert rows and not any("N/A" in row for row in rows)
    samples_file = next((tmp_path / "out").glob("*/samples_safeeraser_efficacy_weapon_*.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    expected = task_docs("efficacy", json.loads(metadata), "Weapon")[:2]
    assert [sample["doc"]["record"] for sample in samples] == [doc["record"] for doc in expected]
    for sample in samples:
        judgements = sample["doc"]["judgements"]  # the judge's verdict and reason, per judged metric
        assert set(judgements) == {"asr", "rr"} and all(j["verdict"] and j["reason"] for j in judgements.values())
