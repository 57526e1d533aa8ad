"""Specificity through lmms-eval (the optional extra; `scripts/test.sh specificity`): the seven benchmarks' own
lmms-eval tasks on small local copies in their formats, the tiny LLaVA with a LoRA adapter merged for them, a
stand-in grader on 127.0.0.1 for MM-Vet and MMBench, and `safeeraser report` adding the Spec column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

import yaml

pytestmark = pytest.mark.specificity
lmms_eval = pytest.importorskip("lmms_eval", reason="lmms-eval is the optional extra [specificity]")

from specificity_fixtures import MMVET_GRADE, GraderServer, fixture_sizes, write_local_benchmarks  # noqa: E402
from test_eval_report import results, write_runs  # noqa: E402

from llamafactory_safeeraser.evaluation.specificity import BENCHMARKS, DEFAULT_TASKS  # noqa: E402


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 1.0)
    out = tmp_path_factory.mktemp("adapters") / "npo_pd"
    peft_model.save_pretrained(out)
    return out


def test_seven_benchmarks_offline_into_the_report(tiny_model_dir: Path, adapter: Path, tmp_path: Path) -> None:
    include = write_local_benchmarks(tmp_path / "benchmarks")
    out = tmp_path / "eval"
    write_runs(out, [results("NPO+PD", 0.1, 0.3)])  # the run's safeeraser results, as `safeeraser eval` wrote them
    with GraderServer() as grader:
        config = tmp_path / "specificity.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "model_name_or_path": str(tiny_model_dir),
                    "adapter_name_or_path": str(adapter),
                    "tasks": [f"{task}_local" for task in DEFAULT_TASKS],
                    "include_path": str(include),
                    "device": "cpu",
                    "grader_model": "grader",
                    "grader_base_url": grader.base_url,
                    "output_dir": str(out),
                    "run_name": "NPO+PD",
                }
            )
        )
        proc = run_cli(["safeeraser", "specificity", str(config)], timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        prompts = [prompt for _, prompt in grader.requests]
    found = json.loads((out / "NPO+PD" / "specificity.json").read_text())
    sizes = fixture_sizes()
    assert list(found["scores"]) == [benchmark.name for benchmark in BENCHMARKS]
    for benchmark in BENCHMARKS:
        task = found["tasks"][benchmark.name]
        assert task["task"] == f"{benchmark.task}_local" and task["n"] == sizes[benchmark.task]
        assert 0.0 <= found["scores"][benchmark.name] <= 1.0
    # every MM-Vet answer went to the grader, whose grade is the score; MMBench asked it what the rules could not read
    assert found["scores"]["MM-Vet"] == float(MMVET_GRADE)
    assert sum("Compare the ground truth and prediction" in prompt for prompt in prompts) == sizes["mmvet"]
    assert all("Which shape is shown?" in p for p in prompts if "match an answer with several options" in p)
    assert found["specificity"] == pytest.approx(sum(found["scores"].values()) / 7)
    assert found["run"]["adapter"] == str(adapter)
    assert not list((out / "NPO+PD").glob(".specificity-*"))  # the merged model and lmms-eval's files are gone

    report = out / "report.md"
    proc = run_cli(["safeeraser", "report", f"runs={out / 'NPO+PD'}", f"output={report}"], timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert f"| 30.0 | {100 * found['specificity']:.1f} |" in text and "## Specificity" in text
