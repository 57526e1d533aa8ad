"""Finished work is never replaced silently: a finished run folder is refused (the recipes' overwrite_output_dir:
false), a resumed run keeps the log of the steps before its checkpoint, and an overwritten folder loses the old
run's loss plots."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import BIN, base_train_config, llamafactory_train, run_cli

import yaml


def log_steps(output_dir) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines()]


@pytest.mark.slow  # trains the tiny model twice (about a minute on 2 CPU cores)
def test_finished_runs_are_refused_and_resumed_runs_keep_their_log(tiny_model_dir, prepared_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "training_npo_loss.png").write_bytes(b"an earlier run's plot")
    config = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="unlearn",
        unlearn_method="ga",
        dataset="safeeraser_forget",
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        plot_loss=True,
        output_dir=str(out),
    )
    llamafactory_train(config, tmp_path, "run")  # overwrite_output_dir: true (the test owns the folder)
    assert not (out / "training_npo_loss.png").exists()  # not this run's: removed
    assert (out / "training_loss.png").exists()
    first = log_steps(out)
    steps = [line["current_steps"] for line in first]
    assert steps[:4] == [1, 2, 3, 4] and set(steps) == {1, 2, 3, 4}  # (LLaMA-Factory adds a closing line)

    finished = tmp_path / "finished"  # a finished run without checkpoints: LLaMA-Factory cannot resume it
    shutil.copytree(out, finished, ignore=shutil.ignore_patterns("checkpoint-*"))
    adapter = (finished / "adapter_model.safetensors").read_bytes()
    other = {**config, "output_dir": str(finished), "overwrite_output_dir": False, "unlearn_method": "npo"}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    proc = run_cli([str(BIN / "llamafactory-cli"), "train", str(tmp_path / "other.yaml")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "llamafactory-cli train: error: Output directory already exists and is not empty" in proc.stderr
    assert (finished / "adapter_model.safetensors").read_bytes() == adapter

    resumed = {**config, "resume_from_checkpoint": str(out / "checkpoint-2")}  # as examples/gpu_recipe.md says
    llamafactory_train(resumed, tmp_path, "run")
    second = log_steps(out)
    assert [line["current_steps"] for line in second] == steps
    assert second[:2] == first[:2]  # the steps before the checkpoint: kept as they were logged
