"""DeepSpeed ZeRO-2 and ZeRO-3 really run: `llamafactory-cli train` with 2 processes on CPU (DeepSpeed's CPU
accelerator, gloo) trains the same weights as DDP on the same global batch, and resumes from a ZeRO checkpoint.

Every run is LoRA with the reference as the disabled adapter (NPO, KL, RMU), plain SGD without clipping (the
trained weights are a readout of the summed gradients), 1 row per process and gradient accumulation 2 (so
DeepSpeed's own accumulation scaling is in play), two epochs of two steps: NPO's cached reference log-probs are
used in the second epoch and the retain rows are drawn anew. All runs start from one saved fresh adapter: under
ZeRO-3, transformers loads the base model inside `deepspeed.zero.Init`, which draws from the seeded RNG, so a new
adapter would get another random init than under DDP. Needs the `deepspeed` extra and a C++ compiler (DeepSpeed
builds its CPU communication op on first use): `scripts/test.sh deepspeed`.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import REPO, SGD_READOUT, base_train_config, llamafactory_train
from safetensors.torch import load_file

pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.slow, pytest.mark.deepspeed]

METHOD_KEYS = {
    "npo": {},
    "gd": {"retain_dataset": "safeeraser_retain"},
    "kl": {"retain_dataset": "safeeraser_retain"},
    "po": {"retain_dataset": "safeeraser_retain"},
    # steering layer 0 of the tiny model's 2 trains layer 0 only (the two below it do not exist)
    "rmu": {"retain_dataset": "safeeraser_retain", "rmu_alpha": 1.0, "rmu_layer": 0},
}
ZERO2, ZERO3 = (str(REPO / f"examples/deepspeed/ds_z{stage}_config.json") for stage in (2, 3))
BF16 = {"bf16": True, "use_cpu": True}  # the recipes' precision; transformers wants use_cpu for bf16 on a CPU
SETUPS = {  # name: (the `deepspeed` key, None for plain DDP over gloo; more keys)
    "ddp": (None, {}),
    "zero2": (ZERO2, {}),
    "zero3": (ZERO3, {}),
    "ddp_bf16": (None, BF16),
    "zero2_bf16": (ZERO2, BF16),
}
# ZeRO-2 and ZeRO-3 reduce the gradients in buckets (reduce-scatter, then each rank steps its fp32 partition and
# the partitions are gathered) where DDP all-reduces them: the same sums in another order, float32 rounding apart
TOLERANCE = 1e-6
TWO_PROCESSES = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "DS_ACCELERATOR": "cpu"}


def run_config(model_dir, dataset_dir, method: str, setup: str, **overrides) -> dict:
    config = base_train_config(
        model_dir,
        dataset_dir,
        stage="unlearn",
        unlearn_method=method,
        dataset="safeeraser_forget",
        pd_dataset="safeeraser_pd",
        pd_weight=0.5,
        max_samples=8,
        num_train_epochs=2.0,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
        **SGD_READOUT,
        **METHOD_KEYS[method],
    )
    deepspeed, keys = SETUPS[setup]
    if deepspeed is not None:
        config["deepspeed"] = deepspeed
    config.update(keys, **overrides)
    return config


@pytest.fixture(scope="module")
def start_adapter(tiny_model_dir, prepared_dir, tmp_path_factory):
    """LLaMA-Factory's fresh LoRA adapter (lora_target: all), saved untrained: one step at learning rate 0."""
    from llamafactory_safeeraser.unlearn.workflow import is_identity_adapter

    config = run_config(tiny_model_dir, prepared_dir, "gd", "ddp", learning_rate=0.0, max_steps=1)
    out = llamafactory_train(config, tmp_path_factory.mktemp("start_adapter"), "start")
    assert is_identity_adapter(out)  # so the disabled-adapter reference is the starting model (workflow's check)
    return out


@pytest.fixture(scope="module")
def trained(start_adapter, tiny_model_dir, prepared_dir, tmp_path_factory):
    """``trained(method, setup)``: output_dir of that run, trained on first use (NPO saves checkpoints)."""
    runs = {}

    def get(method: str, setup: str):
        if (method, setup) not in runs:
            keys = {"save_strategy": "steps", "save_steps": 2, "save_only_model": False} if method == "npo" else {}
            keys["adapter_name_or_path"] = str(start_adapter)
            config = run_config(tiny_model_dir, prepared_dir, method, setup, **keys)
            work = tmp_path_factory.mktemp(f"{method}_{setup}")
            runs[(method, setup)] = llamafactory_train(config, work, "run", timeout=1200, **TWO_PROCESSES)
        return runs[(method, setup)]

    return get


def adapter(output_dir) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "adapter_model.safetensors")


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[key] - b[key]).abs().max()) for key in a)


def assert_ran_under(output_dir, setup: str) -> None:
    log = (output_dir.parent / "run.log").read_text()
    assert "world size: 2" in log
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    zero = "You are using ZeRO with an untested optimizer" in log  # DeepSpeed's engine with ZeRO on
    assert zero == setup.startswith("zero")
    assert ("Detected DeepSpeed ZeRO-3" in log) == setup.startswith("zero3")


@pytest.mark.parametrize("setup", ["zero2", "zero3"])
@pytest.mark.parametrize("method", list(METHOD_KEYS))
def test_zero_trains_the_weights_ddp_trains(method, setup, trained, start_adapter):
    reference, other = trained(method, "ddp"), trained(method, setup)
    assert_ran_under(reference, "ddp")
    assert_ran_under(other, setup)
    start, ddp_weights, weights = adapter(start_adapter), adapter(reference), adapter(other)
    moved = [key for key in weights if not torch.equal(weights[key], start[key])]
    assert moved, "training changed nothing"
    if method == "rmu":  # RMU's frozen layers stay frozen under ZeRO too
        assert all(".layers.0." in key for key in moved), moved
    difference = max_difference(weights, ddp_weights)
    print(f"{method} {setup}: max |weight - DDP's| = {difference:.3g}")
    assert difference <= TOLERANCE, (method, setup, difference)


def test_zero2_in_bf16_trains_the_weights_ddp_trains_in_bf16_to_bf16_rounding(trained):
    """NPO + PD with the recipes' `bf16: true`. DeepSpeed keeps bf16 weights (what it saves) beside fp32 master
    weights; DDP keeps fp32 weights under bf16 autocast: the two agree to bf16 rounding, not to 1e-6. The
    tolerance is two bf16 steps at the adapter's largest weights (~0.14, where one step is 1e-3; rounding the DDP
    weights to bf16 alone moves them by 5e-4); a wrong gradient scale would part them by the ~0.07 they move."""
    zero, ddp = trained("npo", "zero2_bf16"), trained("npo", "ddp_bf16")
    assert_ran_under(zero, "zero2_bf16")
    assert_ran_under(ddp, "ddp_bf16")
    weights, ddp_weights = adapter(zero), adapter(ddp)
    assert {value.dtype for value in weights.values()} == {torch.bfloat16}
    assert {value.dtype for value in ddp_weights.values()} == {torch.float32}
    difference = max_difference({key: value.float() for key, value in weights.items()}, ddp_weights)
    print(f"npo zero2 bf16: max |weight - DDP bf16's| = {difference:.3g}")
    assert difference <= 2e-3


@pytest.mark.parametrize("setup", ["zero2", "zero3"])
def test_resume_from_a_zero_checkpoint_continues_exactly(setup, trained, start_adapter, tiny_model_dir, prepared_dir):
    """NPO + PD killed after step 2 (of 4) and resumed from its ZeRO checkpoint (partitioned optimizer states,
    the epoch's draws) ends where the uninterrupted run ends."""
    full = trained("npo", setup)
    checkpoint = full / "checkpoint-2"
    partitions = sorted(path.name for path in checkpoint.glob("global_step2/*optim_states.pt"))
    assert len(partitions) == 2, partitions  # one optimizer partition per rank: a ZeRO checkpoint
    interrupted = full.parent / "interrupted"
    shutil.copytree(checkpoint, interrupted / "checkpoint-2")  # what a killed run leaves behind
    config = run_config(
        tiny_model_dir,
        prepared_dir,
        "npo",
        setup,
        adapter_name_or_path=str(start_adapter),
        output_dir=str(interrupted),
        resume_from_checkpoint=str(interrupted / "checkpoint-2"),
    )
    resumed = llamafactory_train(config, full.parent, "resumed", timeout=1200, **TWO_PROCESSES)
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == 4
    assert max_difference(adapter(checkpoint), adapter(full)) > 100 * TOLERANCE  # steps 3-4 moved the weights
    difference = max_difference(adapter(resumed), adapter(full))
    print(f"npo {setup} resumed: max |weight - uninterrupted| = {difference:.3g}")
    assert difference <= TOLERANCE
