"""Real `llamafactory-cli train` runs of every method, with and without PD, on the tiny model.

Each run starts from the session's vanilla model (the tiny LLaVA after SFT on the synthetic
forget / PD / retain sets) and trains a LoRA adapter. NLLs are measured afterwards with plain
transformers + peft (conftest.answer_nll), independent of the plugin's own loss code.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import answer_nll as measured_nll
from conftest import base_train_config, llamafactory_train, log_history

pytestmark = pytest.mark.slow

METHODS = ("ga", "gd", "kl", "po", "npo", "simnpo", "idkdpo", "rmu")
NEEDS_RETAIN = {"gd", "kl", "po", "idkdpo", "rmu"}
PD_NLL_BOUND = 1.5  # PD runs keep the PD-set NLL within this many nats of the vanilla model's (no PD: +3 to +8)
FORGET_NLL_RISE = 0.3  # every method raises the forget NLL by at least this much
N_ROWS = 16


def unlearn_config(vanilla, prepared, method: str, with_pd: bool, **overrides) -> dict:
    extra = {"retain_dataset": "safeeraser_retain"} if method in NEEDS_RETAIN else {}
    if method == "ga":  # unguarded GA (the paper's) outruns PD at this learning rate: PD-set NLL +4.5 nats in 2 epochs
        extra["forget_nll_guard"] = "clamp"
    if method == "rmu":
        extra["rmu_alpha"] = 1.0  # the retain weight must suit the model's activation scale (WMDP: 1200 for 7B)
    if with_pd:
        extra["pd_dataset"] = "safeeraser_pd"
    config = base_train_config(
        vanilla,
        prepared,
        stage="unlearn",
        unlearn_method=method,
        dataset="safeeraser_forget",
        max_samples=N_ROWS,
        per_device_train_batch_size=4,
        num_train_epochs=2.0,
        learning_rate=5.0e-3,
        plot_loss=True,
        **extra,
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def rows(prepared_dir):
    return {name: json.loads((prepared_dir / f"{name}.json").read_text())[:N_ROWS] for name in ("forget", "pd")}


@pytest.fixture(scope="module")
def vanilla_nll(vanilla_model_dir, rows):
    return {name: measured_nll(vanilla_model_dir, r) for name, r in rows.items()}


@pytest.fixture(scope="module")
def runs(vanilla_model_dir, prepared_dir, tmp_path_factory):
    """Trained adapters by (method, with_pd); all trained up front, two subprocesses at a time."""
    workdir = tmp_path_factory.mktemp("unlearn")

    def train(key: tuple[str, bool]) -> Path:
        method, with_pd = key
        config = unlearn_config(vanilla_model_dir, prepared_dir, method, with_pd)
        return llamafactory_train(config, workdir, f"{method}{'_pd' if with_pd else ''}")

    keys = [(method, with_pd) for method in METHODS for with_pd in (False, True)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        trained = dict(zip(keys, pool.map(train, keys), strict=True))
    return lambda method, with_pd: trained[(method, with_pd)]


@pytest.mark.parametrize("with_pd", [False, True], ids=["plain", "pd"])
@pytest.mark.parametrize("method", METHODS)
def test_method_runs_forgets_and_saves_a_loadable_adapter(method, with_pd, runs, vanilla_model_dir, rows, vanilla_nll):
    out = runs(method, with_pd)
    assert (out / "adapter_model.safetensors").exists()
    history = log_history(out)
    logged = {key for entry in history for key in entry}
    assert ("pd_nll" in logged) == with_pd
    assert (out / "training_loss.png").exists()
    if with_pd:
        assert (out / "training_pd_nll.png").exists()

    forget_after = measured_nll(vanilla_model_dir, rows["forget"], out)  # loads the adapter with peft
    assert forget_after > vanilla_nll["forget"] + FORGET_NLL_RISE
    if with_pd:
        assert measured_nll(vanilla_model_dir, rows["pd"], out) < vanilla_nll["pd"] + PD_NLL_BOUND


@pytest.mark.parametrize("method", METHODS)
def test_pd_keeps_the_benign_image_answers_better_than_no_pd(method, runs, vanilla_model_dir, rows):
    plain = measured_nll(vanilla_model_dir, rows["pd"], runs(method, False))
    with_pd = measured_nll(vanilla_model_dir, rows["pd"], runs(method, True))
    assert with_pd < plain


def test_guard_stop_ends_training_early_and_says_so(vanilla_model_dir, prepared_dir, tmp_path):
    config = unlearn_config(
        vanilla_model_dir,
        prepared_dir,
        "ga",
        False,
        forget_nll_guard="stop",
        forget_nll_ceiling=0.5,
        num_train_epochs=4.0,
    )
    out = llamafactory_train(config, tmp_path, "stop")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] < state["max_steps"]
    assert "forget-NLL guard: forget NLL passed 0.50; stopping training" in (tmp_path / "stop.log").read_text()
    assert (out / "adapter_model.safetensors").exists()


def test_guard_clamp_bounds_gradient_ascent(vanilla_model_dir, prepared_dir, tmp_path, runs, rows):
    config = unlearn_config(
        vanilla_model_dir, prepared_dir, "ga", False, forget_nll_guard="clamp", forget_nll_ceiling=1.5
    )
    clamped = llamafactory_train(config, tmp_path, "clamp")
    log = (tmp_path / "clamp.log").read_text()
    assert "forget-NLL guard: from step" in log
    assert any(entry.get("guard_held_back", 0) > 0 for entry in log_history(clamped))
    unguarded = llamafactory_train(
        unlearn_config(vanilla_model_dir, prepared_dir, "ga", False, forget_nll_guard="off"), tmp_path, "off"
    )
    clamped_nll = measured_nll(vanilla_model_dir, rows["forget"], clamped)
    unguarded_nll = measured_nll(vanilla_model_dir, rows["forget"], unguarded)
    assert clamped_nll < unguarded_nll - 2.0
    assert clamped_nll < 1.5 + 2.5  # held near the ceiling (one large step can overshoot)


@pytest.fixture(scope="module")
def long_answer_dir(synthetic_dir, tmp_path_factory):
    """The synthetic train file with every answer eight times as long, prepared."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets

    data = tmp_path_factory.mktemp("long") / "safeeraser"
    shutil.copytree(synthetic_dir, data)
    records = json.loads((data / "all_train.json").read_text())
    for record in records:
        for pair in record["unsafe_pairs"]:
            pair["model_response"] = " ".join([pair["model_response"]] * 8)
            pair["sd_response"] = " ".join([pair["sd_response"]] * 8)
        for key in ("UnharmPair_text1", "UnharmPair_text2", "UnharmPair_image1", "UnharmPair_image2"):
            record[key]["Prediction"] = " ".join([record[key]["Prediction"]] * 8)
    (data / "all_train.json").write_text(json.dumps(records))
    return prepare_datasets(data / "all_train.json", tmp_path_factory.mktemp("long_prepared") / "lf").out_dir


@pytest.mark.parametrize(("method", "with_pd", "cutoff"), [("ga", False, 90), ("gd", True, 110)])
def test_answers_longer_than_the_cutoff_train(method, with_pd, cutoff, vanilla_model_dir, long_answer_dir, tmp_path):
    """Answers of ~200 tokens at cutoff_len 90/110 (the prompt is ~60 with 16 image tokens): LLaMA-Factory's
    SFT truncation would cut the prompt and its image tokens and crash the forward pass."""
    config = unlearn_config(vanilla_model_dir, long_answer_dir, method, with_pd, cutoff_len=cutoff, max_steps=3)
    out = llamafactory_train(config, tmp_path, f"{method}_long")
    assert (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
    assert all(entry["forget_nll"] > 0 for entry in log_history(out) if "forget_nll" in entry)


def test_resume_from_checkpoint_continues_exactly(vanilla_model_dir, prepared_dir, tmp_path):
    """An interrupted run resumed from its checkpoint ends with the same adapter as an uninterrupted one."""
    import torch
    from safetensors.torch import load_file

    common = dict(max_steps=4, save_strategy="steps", save_steps=2, save_only_model=False, num_train_epochs=1.0)
    full = llamafactory_train(unlearn_config(vanilla_model_dir, prepared_dir, "npo", True, **common), tmp_path, "full")
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    shutil.copytree(full / "checkpoint-2", interrupted / "checkpoint-2")  # what a killed run leaves behind
    config = unlearn_config(
        vanilla_model_dir,
        prepared_dir,
        "npo",
        True,
        output_dir=str(interrupted),
        resume_from_checkpoint=str(interrupted / "checkpoint-2"),
        **common,
    )
    resumed = llamafactory_train(config, tmp_path, "resumed")
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == 4
    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    start = load_file(full / "checkpoint-2" / "adapter_model.safetensors")
    assert not all(torch.allclose(a[k], start[k]) for k in a)  # steps 3-4 did change it
