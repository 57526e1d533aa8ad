"""Two CPU processes (torchrun + gloo) compute the same first-step gradients as one process.

Plain SGD with learning rate 1 turns the saved weights into a gradient readout:
w1 = w0 - g. One rank with gradient accumulation 2 and two ranks with one row each see the
same global batch (rows 0 and 1, no shuffling), with LLaMA-Factory's default gradient
checkpointing on. Full fine-tuning, so every language-model weight's gradient is compared.
"""

from __future__ import annotations

import pytest
import torch
from conftest import base_train_config, llamafactory_train
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def test_two_ranks_match_one_rank(tiny_model_dir, prepared_dir, tmp_path):
    common = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="unlearn",
        unlearn_method="gd",
        dataset="safeeraser_forget",
        retain_dataset="safeeraser_retain",
        pd_dataset="safeeraser_pd",
        pd_weight=0.5,
        finetuning_type="full",
        optim="sgd",
        learning_rate=1.0,
        weight_decay=0.0,
        max_grad_norm=1.0e9,
        max_steps=1,
        per_device_train_batch_size=1,
        disable_shuffling=True,
        max_samples=8,
        forget_nll_guard="off",
        save_only_model=True,
        ddp_timeout=300,
    )
    single = llamafactory_train({**common, "gradient_accumulation_steps": 2}, tmp_path, "single")
    double = llamafactory_train(
        {**common, "gradient_accumulation_steps": 1}, tmp_path, "double", FORCE_TORCHRUN="1", NPROC_PER_NODE="2"
    )
    assert "world size: 2" in (tmp_path / "double.log").read_text()
    start = load_file(tiny_model_dir / "model.safetensors")
    one = load_file(single / "model.safetensors")
    two = load_file(double / "model.safetensors")
    assert one.keys() == two.keys()
    moved = [k for k in one if k in start and not torch.equal(one[k], start[k])]
    assert len(moved) > 10 and any("language_model" in k for k in moved)
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-6, rtol=0), key
