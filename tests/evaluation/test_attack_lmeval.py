"""End to end: real lm-eval runs of attack groups on the tiny LLaVA (CPU): ``safeeraser eval tasks=[...]`` writes
results.json's ``attacks`` section, equal to its logged samples rescored; plain ``lm-eval --tasks`` logs each
sample's attack (``--log_samples``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from llamafactory_safeeraser.lmeval_task import metric_catalog, scoring
from llamafactory_safeeraser.lmeval_task.attacks import typographic
from llamafactory_safeeraser.lmeval_task.attacks.catalog import attack_task, family_attacks
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig
from llamafactory_safeeraser.tasks import TASK_DIR

pytestmark = pytest.mark.slow
LIMIT = 2  # documents per task


def test_safeeraser_eval_scores_the_image_attacks_next_to_a_plain_kind(
    tiny_model_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    from lm_eval.api.metrics import mean_stderr

    out = tmp_path / "out"
    overrides = {
        "model_name_or_path": tiny_model_dir,
        "adapter_name_or_path": "null",
        "data_dir": synthetic_dir,
        "output_dir": out,
        "run_name": "GA",
        "max_new_tokens": 4,
        "limit": LIMIT,
        "batch_size": 8,
        "seed": 5,
        "tasks": "safeeraser_sarr,safeeraser_attacks_image",  # a list on the command line: comma-separated
    }
    command = ["safeeraser", "eval", str(REPO / "yaml" / "eval_tiny.yaml")]
    proc = run_cli(command + [f"{key}={value}" for key, value in overrides.items()], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "GA" / "results.json").read_text())
    assert set(results["tasks"]) == {"sarr"}
    assert results["settings"]["tasks"] == ["safeeraser_sarr", "safeeraser_attacks_image"]
    expected = {a.name: list(a.kinds) for a in family_attacks("image")}
    assert {name: list(kinds) for name, kinds in results["attacks"].items()} == expected

    judge_json = JudgeConfig(**results["judge"]["config"]).to_json()
    lines = [json.loads(line) for line in (out / "GA" / "samples.jsonl").read_text().splitlines()]
    for name, kinds in expected.items():
        for kind in kinds:
            numbers = results["attacks"][name][kind]
            task = attack_task(name, kind)
            rows = [line for line in lines if line["task"] == task]
            assert numbers["task"] == task and numbers["family"] == "image" and numbers["n"] == len(rows) == LIMIT
            values = []
            for line in rows:
                assert (line["attack"], line["attack_family"]) == (name, "image") and line["attack_strength"]
                assert line["attack_question"] == line["question"] and line["task_kind"] == kind
                skipped = ("task", "doc_id", "response", "scores", "judgements")
                doc = {key: value for key, value in line.items() if key not in skipped} | {"judge": judge_json}
                rescored = scoring.score_response(doc, line["response"])
                assert rescored.metrics() == line["scores"] and rescored.judgements == line["judgements"]
                values.append(rescored.values)
            for metric in metric_catalog.kind_metrics(kind):
                column = [row[metric] for row in values]
                assert numbers["metrics"][metric] == pytest.approx(sum(column) / len(column))
                assert numbers["stderr"][metric] == pytest.approx(mean_stderr(column))


def test_plain_lm_eval_logs_the_attack_of_every_sample(
    tiny_model_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    metadata = json.dumps({"data_dir": str(synthetic_dir), "harmful_samples": 1, "attack_seed": 3})
    proc = run_cli(
        [
            "lm-eval",
            "--model",
            "hf-multimodal",
            "--model_args",
            f"pretrained={tiny_model_dir},max_images=1",
            "--device",
            "cpu",
            "--include_path",
            str(TASK_DIR),
            "--tasks",
            "safeeraser_attacks_typographic",
            "--metadata",
            metadata,
            "--gen_kwargs",
            "max_gen_toks=4",
            "--limit",
            str(LIMIT),
            "--batch_size",
            "4",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(next((tmp_path / "out").glob("*/results_*.json")).read_text())
    tasks = [attack_task(a.name, kind) for a in family_attacks("typographic") for kind in a.kinds]
    assert document["group_subtasks"]["safeeraser_attacks_typographic"] == tasks
    for task in tasks:
        assert isinstance(document["results"][task]["asr,none"], float)
        assert isinstance(document["results"][task]["asr_stderr,none"], float)
        (samples_file,) = (tmp_path / "out").glob(f"*/samples_{task}_*.jsonl")
        samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
        assert len(samples) == LIMIT
        for sample in samples:
            doc = sample["doc"]
            assert doc["attack"] in task and doc["attack_family"] == "typographic" and doc["attack_strength"] == ""
            assert doc["attack_question"] == typographic.INSTRUCTION and typographic.INSTRUCTION in doc["prompt"]
            assert doc["question"] not in doc["prompt"]  # the harmful question is in the image only
