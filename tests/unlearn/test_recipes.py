"""YAML recipes carry the paper's settings and parse; DeepSpeed configs; the custom-method example works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, base_train_config, llamafactory_train, log_history, subprocess_env

import yaml
from llamafactory_safeeraser.hook.stage import parse_train_args

RECIPES = sorted((REPO / "yaml").glob("llava[0-9]*b_*.yaml"))  # the LLaVA-1.5 ones (llavanext_*: docs/models.md)
# the SafeEraser reference's PD weights (GD+PD also halves the retain weight)
PAPER_PD_WEIGHTS = {"ga": 0.5, "gd": 0.5, "kl": 1.0, "po": 1.0}
PAPER_METHODS = ("ga", "gd", "kl", "po", "npo")
REFERENCE_SYSTEM = (  # the reference's config/model_config.yaml, llava-v1.5-vicuna system_tag (stripped)
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def test_every_method_has_recipes_with_and_without_pd():
    names = {p.stem for p in RECIPES} | {p.stem for p in (REPO / "yaml").glob("tiny_*.yaml")}
    for method in ("ga", "gd", "kl", "po", "npo", "simnpo", "idkdpo", "rmu"):
        sizes = ("7b", "13b") if method in PAPER_METHODS else ("7b",)  # the paper's methods also at 13B
        for name in [f"llava{size}_{method}" for size in sizes] + [f"tiny_{method}"]:
            assert {name, f"{name}_pd"} <= names, name


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_parses_and_holds_reference_hyperparameters(path, tiny_model_dir, prepared_dir, tmp_path):
    config = yaml.safe_load(path.read_text())
    size = path.stem.split("_")[0].removeprefix("llava")
    method = path.stem.split("_")[1]
    assert config["model_name_or_path"] == f"llava-hf/llava-1.5-{size}-hf"
    assert config["unlearn_method"] == method and config["stage"] == "unlearn"
    expected = {
        "lora_rank": 32,
        "lora_alpha": 256,
        "lora_dropout": 0.05,
        "learning_rate": 1.0e-4,
        "weight_decay": 0.01,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.06,
        "max_grad_norm": 1.0,
        "num_train_epochs": 10.0,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 16,
        "seed": 233,
        "bf16": True,
        "finetuning_type": "lora",
        "freeze_vision_tower": True,
    }
    if method != "rmu":  # RMU trains only its chosen layers; the others train the projector fully, as the paper
        expected["additional_target"] = "multi_modal_projector"
    assert {key: config[key] for key in expected} == expected
    assert set(config["lora_target"].split(",")) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert Path(REPO / config["deepspeed"]).is_file()
    # the SafeEraser reference's behaviour, spelled out (docs/fidelity.md)
    text = path.read_text()
    assert "docs/fidelity.md" in text
    # the reference's max_length 512 counts BOS and the one <image> token the model expands into 576 positions
    assert config["cutoff_len"] == 512 - 1 + 576
    assert config["eos_target"] is False and config["disable_shuffling"] is True
    assert config["default_system"] == REFERENCE_SYSTEM  # the reference's training text, not the template's "user"
    assert config["image_max_pixels"] >= 10**9  # no shrinking before the CLIP processor
    assert "--capitalize" in text.split("\n### model")[0]  # the header's prepare command cases text as the reference
    assert config.get("forget_nll_guard", "off") == "off"  # no guard, as the reference
    if "retain_dataset" in config:
        assert config["retain_sampling"] == "per_epoch"
    if method == "kl":
        assert config["kl_positions"] == "all"
    if method == "po":
        assert config["po_reduction"] == "joint" and config["refusal_sampling"] == "per_epoch"
    keys = ("eos_target", "disable_shuffling", "cutoff_len", "kl_positions", "po_reduction", "pd_pairing")
    for key in (*keys, "default_system", "image_max_pixels"):
        for line in text.splitlines():
            if line.startswith(f"{key}:"):
                assert "fidelity" in line, line  # each such line names its docs/fidelity.md row
    if path.stem.endswith("_pd"):
        assert config["pd_dataset"] == "safeeraser_pd"
        if method in PAPER_PD_WEIGHTS:
            assert config["pd_weight"] == PAPER_PD_WEIGHTS[method]
        if method == "gd":
            assert config["retain_weight"] == 0.5
        # the reference's loader trains the PD row at the retain draw's index; methods it lacks keep PD row i
        assert config["pd_pairing"] == ("retain_draw" if method in PAPER_PD_WEIGHTS else "same_question")
    else:
        assert "pd_dataset" not in config

    # LLaMA-Factory's own parser accepts it (CPU stand-ins for the GPU-only settings)
    config.update(model_name_or_path=str(tiny_model_dir), dataset_dir=str(prepared_dir), output_dir=str(tmp_path))
    for gpu_only in ("deepspeed", "bf16"):
        config.pop(gpu_only)
    *_, finetuning_args, _ = parse_train_args(config)
    assert finetuning_args.unlearn_method == method


def test_deepspeed_configs_are_zero2_and_zero3():
    for stage in (2, 3):
        config = json.loads((REPO / f"examples/deepspeed/ds_z{stage}_config.json").read_text())
        assert config["zero_optimization"]["stage"] == stage
        assert config["bf16"]["enabled"] == "auto" and config["train_micro_batch_size_per_gpu"] == "auto"


@pytest.mark.slow
def test_custom_method_example_installs_and_trains_with_pd(vanilla_model_dir, prepared_dir, tmp_path):
    """The example package registers `wga` through an entry point; PD is added by the base class."""
    site, source = tmp_path / "site", tmp_path / "custom_method"
    shutil.copytree(REPO / "examples/custom_method", source)  # a build writes build/ into its source folder
    pip_install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_install, "--target", str(site), str(source)],
        check=True,
        env=subprocess_env(),
        capture_output=True,
    )
    example = yaml.safe_load((REPO / "examples/custom_method/wga_tiny.yaml").read_text())
    config = base_train_config(
        vanilla_model_dir,
        prepared_dir,
        max_samples=16,
        **{k: example[k] for k in ("stage", "unlearn_method", "dataset", "pd_dataset", "pd_weight", "wga_alpha")},
    )
    # the plugin's site first, then this checkout's PYTHONPATH (the code under test)
    python_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    out = llamafactory_train(config, tmp_path, "wga", PYTHONPATH=python_path)
    logged = {key for entry in log_history(out) for key in entry}
    assert {"wga_loss", "forget_nll", "pd_nll"} <= logged
    log = (tmp_path / "wga.log").read_text()
    assert "Unlearning with wga" in log and "method keys: wga_alpha=0.5" in log  # the plugin's own YAML key
    usage = subprocess.run(
        [str(Path(sys.executable).parent / "llamafactory-cli"), "train", "-h"],
        env=subprocess_env(PYTHONPATH=python_path),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "--wga_alpha" in usage and "exponent of the token weight" in usage
    forget_nll = [entry["forget_nll"] for entry in log_history(out) if "forget_nll" in entry]
    assert forget_nll[-1] > forget_nll[0]
