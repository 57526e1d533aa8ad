"""The objective does not depend on how a global batch is split: one process with batch 2, two processes
(torchrun + gloo) with batch 1 each, and one process with batch 1 and gradient accumulation 2 train to the
same weights (1e-5), for every method with and without PD, on rows of different lengths.

Plain SGD and no clipping turn the trained weights into a readout of the summed gradients. Each run is
LoRA with the reference as the disabled adapter (KL, NPO, IdkDPO, RMU), two epochs of two steps, so the
cached reference log-probs (NPO, IdkDPO) are used in the second epoch and the retain rows are drawn anew;
LLaMA-Factory's gradient checkpointing is on. Qwen2-VL runs mix image sizes (so image-token counts) in a
batch. One real `llamafactory-cli` torchrun job (full fine-tuning) checks the CLI path too.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import BIN, REPO, SGD_READOUT, base_train_config, llamafactory_train, run_cli
from PIL import Image
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

METHOD_KEYS = {
    "ga": {},
    "gd": {"retain_dataset": "safeeraser_retain"},
    "kl": {"retain_dataset": "safeeraser_retain"},
    "po": {"retain_dataset": "safeeraser_retain"},
    "npo": {},
    "simnpo": {},
    "idkdpo": {"retain_dataset": "safeeraser_retain"},
    "rmu": {"retain_dataset": "safeeraser_retain", "rmu_alpha": 1.0},
}
SETUPS = {  # name: (keys, processes); the global batch is always rows (0, 1), then (2, 3)
    "one_process_batch_2": ({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}, 1),
    "two_processes_batch_1": ({"per_device_train_batch_size": 1, "gradient_accumulation_steps": 1}, 2),
    "batch_1_accumulation_2": ({"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2}, 1),
}
TOLERANCE = 1e-5


def probe_config(model_dir, dataset_dir, method: str, with_pd: bool, template: str = "llava") -> dict:
    config = base_train_config(
        model_dir,
        dataset_dir,
        stage="unlearn",
        unlearn_method=method,
        dataset="safeeraser_forget",
        template=template,
        max_samples=4,
        num_train_epochs=2.0,
        **SGD_READOUT,
        **METHOD_KEYS[method],
    )
    if with_pd:
        config.update(pd_dataset="safeeraser_pd", pd_weight=0.5)
    return config


@pytest.fixture(scope="module")
def mixed_size_dir(synthetic_dir, tmp_path_factory):
    """The synthetic data with images of three sizes (Qwen2-VL: 4, 6 and 12 image tokens), prepared."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets

    data = tmp_path_factory.mktemp("mixed") / "safeeraser"
    shutil.copytree(synthetic_dir, data)
    records = json.loads((data / "all_train.json").read_text())
    sizes = [(32, 32), (48, 32), (64, 48)]
    for index, record in enumerate(records):
        for key, shift in (("image_path", 0), ("SDImage_path", 1)):
            path = data / record[key]
            Image.open(path).resize(sizes[(index + shift) % 3]).save(path)
    return prepare_datasets(data / "all_train.json", tmp_path_factory.mktemp("mixed_prepared") / "lf").out_dir


@pytest.fixture(scope="module")
def probed(tiny_model_dir, family_model_dir, prepared_dir, mixed_size_dir, tmp_path_factory):
    """{setup: {config name: (weights before and after, info)}} from one probe job per setup."""
    configs = {
        f"{method}{'_pd' if with_pd else ''}": probe_config(tiny_model_dir, prepared_dir, method, with_pd)
        for method in METHOD_KEYS
        for with_pd in (False, True)
    }
    qwen = family_model_dir("qwen2_vl")
    for method in ("gd", "npo"):
        configs[f"qwen2_vl_{method}_pd"] = probe_config(qwen, mixed_size_dir, method, True, template="qwen2_vl")
    results = {}
    for setup, (keys, processes) in SETUPS.items():
        work = tmp_path_factory.mktemp(setup)
        job = {name: {**config, **keys, "output_dir": str(work / name)} for name, config in configs.items()}
        (work / "configs.json").write_text(json.dumps(job))
        probe = [str(REPO / "tests/e2e/grad_probe.py"), str(work / "configs.json"), str(work)]
        launcher = [str(BIN / "torchrun"), "--nproc_per_node", "2"] if processes == 2 else [str(BIN / "python")]
        proc = run_cli(launcher + probe, cwd=work, timeout=1800)
        (work / "probe.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stderr[-4000:]
        if processes == 2:
            assert "world size: 2" in proc.stdout + proc.stderr
        results[setup] = {
            name: (load_file(work / f"{name}.safetensors"), json.loads((work / f"{name}.json").read_text()))
            for name in configs
        }
    return results


def config_names() -> list[str]:
    names = [f"{method}{suffix}" for method in METHOD_KEYS for suffix in ("", "_pd")]
    return [*names, "qwen2_vl_gd_pd", "qwen2_vl_npo_pd"]


@pytest.mark.parametrize("name", config_names())
def test_every_split_of_the_global_batch_trains_the_same_weights(name, probed):
    reference, info = probed["one_process_batch_2"][name]
    assert info["steps"] == 4
    assert info["first_two_lengths"][0] != info["first_two_lengths"][1]  # rows of different lengths
    after = {key: value for key, value in reference.items() if key.startswith("after.")}
    moved = [key for key in after if not torch.equal(after[key], reference["before." + key[len("after.") :]])]
    assert moved, "training changed nothing"
    for setup in ("two_processes_batch_1", "batch_1_accumulation_2"):
        other, other_info = probed[setup][name]
        assert other_info["steps"] == 4
        assert other.keys() == reference.keys()
        for key in after:
            assert torch.allclose(other[key], after[key], atol=TOLERANCE, rtol=0), (setup, key)


def test_llamafactory_cli_two_ranks_match_one_rank(tiny_model_dir, prepared_dir, tmp_path):
    """The CLI path (llamafactory-cli relaunching itself through torchrun), full fine-tuning, GD + PD."""
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
