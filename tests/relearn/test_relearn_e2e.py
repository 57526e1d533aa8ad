"""`safeeraser relearn` end to end on the tiny models: a GA-unlearned model relearns the harmful answers of the
records it never saw in relearning, through real `llamafactory-cli train` and lm-eval runs."""

from __future__ import annotations

import json

import pytest
from conftest import BIN, base_train_config, llamafactory_train, run_cli

import yaml
from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.results import RunSpec
from llamafactory_safeeraser.relearn import RelearnSettings, relearn_runs
from llamafactory_safeeraser.relearn.split import split_records

pytestmark = pytest.mark.slow
STEPS = 24


@pytest.fixture(scope="module")
def ga_adapter(vanilla_model_dir, prepared_dir, tmp_path_factory):
    """GA as yaml/tiny_ga.yaml trains it: the vanilla model's harmful answers erased (ASR 0 on the forget set)."""
    config = base_train_config(
        vanilla_model_dir,
        prepared_dir,
        stage="unlearn",
        unlearn_method="ga",
        dataset="safeeraser_forget",
        per_device_train_batch_size=8,
        learning_rate=2.0e-3,
        num_train_epochs=3.0,
        lr_scheduler_type="cosine",
        warmup_ratio=0.06,
        max_grad_norm=1.0,
    )
    return llamafactory_train(config, tmp_path_factory.mktemp("ga"), "ga")


def test_relearning_brings_back_what_ga_erased(vanilla_model_dir, ga_adapter, synthetic_dir, tmp_path):
    out = tmp_path / "relearn"
    config = tmp_path / "relearn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": str(synthetic_dir),
                "steps": [STEPS],
                "learning_rate": 5.0e-3,
                "cutoff_len": 256,
                "harmful_samples": 1,
                "max_gen_toks": 32,
                "eval_batch_size": 64,
                "train_args": {"preprocessing_num_workers": 1, "dataloader_num_workers": 0},
                "out": str(out),
            }
        )
    )
    args = [str(BIN / "safeeraser"), "relearn", "--config", str(config), "--model", str(vanilla_model_dir)]
    proc = run_cli([*args, "--adapter", str(ga_adapter), "--name", "GA"], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    study = json.loads((out / "GA" / "relearn.json").read_text())
    (seed,) = study["seeds"]
    records = read_benchmark(synthetic_dir / "all_train.json")
    split = split_records(records, 0.25, 233)
    assert (seed["relearn_records"], seed["scored_records"]) == (list(split.relearn), list(split.scored))
    assert seed["relearn_rows"] == 4 * len(split.relearn)
    before, after = (point["summary"] for point in seed["points"])
    assert before["asr_eff"] <= 0.1 and before["asr_gen"] <= 0.1  # GA erased the answers
    assert after["asr_eff"] >= before["asr_eff"] + 0.3  # and relearning on a quarter of the records revives the rest
    losses = [loss for _, loss in seed["train_loss"]]
    assert len(losses) == STEPS and losses[-1] < losses[0] / 2

    eval_dir = out / "GA" / "seed-233" / "eval"
    for steps in (0, STEPS):
        results = json.loads((eval_dir / f"step-{steps}" / "results.json").read_text())
        assert results["tasks"]["efficacy"]["n"] == 4 * len(split.scored)  # scored on the rest only
        assert (results["run"]["adapter"] is None) == (steps == 0)
    assert not list((out / "GA").rglob("checkpoint-*")) and not (out / "GA" / "merged").exists()
    assert sorted(p.name for p in out.iterdir()) == ["GA", "logs", "report.md", "report.png"]  # no scratch left
    report = (out / "report.md").read_text()
    assert "## GA" in report and f"| {STEPS} |" in report and (out / "report.png").is_file()


def test_a_failed_relearning_run_leaves_nothing_behind(tiny_model_dir, synthetic_dir, tmp_path):
    out = tmp_path / "out"
    settings = RelearnSettings(data=str(synthetic_dir), steps=(1,), train_args={"no_such_key": 1})
    with pytest.raises(SafeEraserError, match=r"relearning run failed \(exit \d+\): .*no_such_key") as caught:
        relearn_runs([RunSpec("tiny", tiny_model_dir)], settings, out, progress=None)
    assert "\n" not in str(caught.value)
    log = out / "logs" / "tiny-seed-233.train.log"
    assert str(log) in str(caught.value) and "no_such_key" in log.read_text()  # the log outlives the run folder
    assert [p.name for p in out.iterdir()] == ["logs"]
