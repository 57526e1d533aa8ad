"""Quantized re-scoring (``quantization_bits``): the key's checks, run names, the weights bitsandbytes produces
against bounds computed here from the full-precision weights, and a real ``safeeraser eval`` of the quantized
tiny model (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli

import yaml
from llamafactory_safeeraser.data.records import CATEGORIES
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.config import EvalCommand
from llamafactory_safeeraser.evaluation.results import (
    RunSpec,
    method_of,
    quantized_of,
    run_folder_name,
    with_quantized,
)
from llamafactory_safeeraser.lmeval_task import metric_catalog
from llamafactory_safeeraser.settings import read_config

# NF4's 16 levels (QLoRA, Dettmers et al. 2023, appendix E): quantiles of N(0, 1) scaled to [-1, 1]
NF4_LEVELS = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)
NF4_BLOCK = 64
# double quantization: each block's absmax, less their mean, in bitsandbytes' signed 8-bit dynamic code per group of
# 256 blocks; the code's widest gap is 0.01406 (next to +-1), so rounding moves a value by <= 0.00703 of the
# group's largest |absmax - mean|
DOUBLE_QUANT_GROUP = 256
DOUBLE_QUANT_HALF_GAP = 0.00703126
FP16_EPS = 2.0**-11  # float16's relative rounding error (half an ulp)


def eval_config(tmp_path: Path, **values) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": "m", "output_dir": "o", **values}))
    return path


# ----- the key -----------------------------------------------------------------------------------------------
def test_quantization_bits_default_to_none_and_read_from_yaml(tmp_path: Path) -> None:
    assert read_config(EvalCommand, eval_config(tmp_path)).settings.quantization_bits == ()
    job = read_config(EvalCommand, eval_config(tmp_path, quantization_bits=[8, 4]))
    assert job.settings.quantization_bits == (8, 4)
    assert read_config(EvalCommand, eval_config(tmp_path), ["quantization_bits=4"]).settings.quantization_bits == (4,)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"quantization_bits": [3]}, "key 'quantization_bits' must be one of 8, 4, got 3"),
        ({"quantization_bits": [8, 16]}, "key 'quantization_bits' must be one of 8, 4, got 16"),
        ({"quantization_bits": ["int4"]}, "key 'quantization_bits': expected an integer"),
        ({"quantization_bits": [4, 4]}, "key 'quantization_bits': each bit width once, got [4, 4]"),
        ({"quantization_bits": [4], "backend": "vllm"}, "quantized runs need backend=hf (got backend=vllm)"),
    ],
)
def test_bad_quantization_bits_are_one_line_errors(values: dict, message: str, tmp_path: Path) -> None:
    config = eval_config(tmp_path, **values)
    with pytest.raises(SafeEraserError) as caught:
        read_config(EvalCommand, config)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bad_quantization_bits_exit_2_naming_the_file(tmp_path: Path) -> None:
    config = eval_config(tmp_path, quantization_bits=[3])
    proc = run_cli(["safeeraser", "eval", str(config)], timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line == f"safeeraser: error: {config}: key 'quantization_bits' must be one of 8, 4, got 3"


def test_quantized_runs_refuse_data_parallel_processes_before_anything_runs(tmp_path: Path) -> None:
    from llamafactory_safeeraser.evaluation import EvalSettings, evaluate_runs

    settings = EvalSettings(data_dir=tmp_path / "absent", quantization_bits=(4,))
    with pytest.raises(SafeEraserError, match=r"^key 'quantization_bits': quantized runs need num_processes=1, got 2$"):
        evaluate_runs([RunSpec("NPO", tmp_path / "absent")], settings, tmp_path / "out", num_processes=2)
    assert not (tmp_path / "out").exists()


def test_missing_bitsandbytes_is_one_line(monkeypatch) -> None:
    import importlib.util

    from llamafactory_safeeraser.integration import quantization

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "bitsandbytes" else real(name))
    with pytest.raises(SafeEraserError, match=r"^key 'quantization_bits': bitsandbytes is not installed \(pip install"):
        quantization.check_installed()


# ----- run names ----------------------------------------------------------------------------------------------
def test_quantized_run_names() -> None:
    runs = with_quantized([RunSpec("NPO", "m"), RunSpec("NPO+PD", "m", "a")], (8, 4))
    assert [(run.name, run.adapter, run.quantization_bit) for run in runs] == [
        ("NPO", None, None),
        ("NPO@int8", None, 8),
        ("NPO@int4", None, 4),
        ("NPO+PD", "a", None),
        ("NPO+PD@int8", "a", 8),
        ("NPO+PD@int4", "a", 4),
    ]
    assert with_quantized([RunSpec("GA", "m")], ()) == [RunSpec("GA", "m")]
    assert quantized_of("NPO+PD@int4") == ("NPO+PD", 4) and quantized_of("NPO+PD") == ("NPO+PD", None)
    assert quantized_of("vanilla@int8") == ("vanilla", 8) and quantized_of("a@b") == ("a@b", None)
    assert method_of("NPO+PD@int4") == ("NPO", True) and method_of("GA@int8") == ("GA", False)
    assert method_of("PO + pd@int8") == ("PO", True)
    assert run_folder_name("NPO+PD@int4") == "NPO+PD@int4"


# ----- the quantized weights ---------------------------------------------------------------------------------
def merged_weights(model_dir: Path, adapter_dir: Path) -> dict:
    """Full-precision weights of base + LoRA, merged here: W + (alpha / r) B A for every adapted layer."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    weights = {
        name: module.weight.detach().clone() for name, module in base.named_modules() if hasattr(module, "weight")
    }
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    lora = load_file(adapter_dir / "adapter_model.safetensors")
    scale = config["lora_alpha"] / config["r"]
    adapted = 0
    for key, a in lora.items():
        if ".lora_A." in key:
            name = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            b = lora[key.replace(".lora_A.", ".lora_B.")]
            weights[name] = weights[name] + scale * (b.float() @ a.float())
            adapted += 1
    assert adapted > 0
    return weights


def nf4_half_gap(normalized):
    """Half the gap between the two NF4 levels around each normalized value in [-1, 1]: nearest-level rounding
    moves a value by at most this."""
    import torch

    levels = torch.tensor(NF4_LEVELS)
    upper = torch.searchsorted(levels, normalized.clamp(-1, 1).contiguous()).clamp(1, len(levels) - 1)
    return (levels[upper] - levels[upper - 1]) / 2


@pytest.fixture(scope="module")
def quantized(tiny_model_dir: Path, lora_adapter: Path):
    """``quantized(bits)``: the tiny model with the LoRA adapter, merged and quantized as an eval run loads it."""
    pytest.importorskip("bitsandbytes")
    from llamafactory_safeeraser.evaluation.merge import quantized_model

    def load(bits: int):
        with quantized_model(RunSpec("NPO", tiny_model_dir, lora_adapter, bits), "cpu") as model:
            return model

    return load


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, lora_adapter: Path) -> dict:
    return merged_weights(tiny_model_dir, lora_adapter)


def split_layers(model, quantized_type: type) -> tuple[dict, list[str]]:
    """({name: layer} quantized to ``quantized_type``, [names of the linear layers left in full precision])."""
    import torch

    layers = {name: module for name, module in model.named_modules() if isinstance(module, quantized_type)}
    return layers, [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]


def test_int8_weights_are_the_merged_weights_within_absmax_rounding(quantized, reference: dict) -> None:
    import torch
    from bitsandbytes.nn import Linear8bitLt

    layers, kept = split_layers(quantized(8), Linear8bitLt)
    assert kept == ["lm_head"] and len(layers) == 28  # every linear layer but the output embedding
    worst = largest = 0.0
    for name, layer in layers.items():
        w = reference[name]
        codes, row_absmax = layer.weight.data, layer.weight.SCB
        assert codes.dtype == torch.int8 and codes.abs().max() == 127
        w_q = codes.float() * row_absmax[:, None] / 127
        # symmetric int8 per output row: half a step, absmax / 254; bitsandbytes rounds w to float16 first
        absmax = w.abs().amax(dim=1, keepdim=True)
        bound = absmax * (1 + FP16_EPS) / 254 + w.abs() * FP16_EPS
        error = (w - w_q).abs()
        assert (error <= bound * (1 + 1e-5)).all(), name
        worst, largest = max(worst, float((error / bound).max())), max(largest, float((error / absmax).max()))
    print(f"int8, {len(layers)} layers: max |w - w_q| / bound {worst:.4f}, / row absmax {largest:.5f}")
    assert worst > 0.5  # rounding happened: the bound is approached, not trivially met


def test_nf4_weights_are_the_merged_weights_within_the_block_step(quantized, reference: dict) -> None:
    import torch
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit

    from llamafactory_safeeraser.integration.quantization import cpu_unsupported_modules

    model = quantized(4)
    layers, kept = split_layers(model, Linear4bit)
    # on CPU, layers whose input width is not a multiple of the block stay full precision (integration/quantization)
    narrow = cpu_unsupported_modules(model)
    assert kept == [*narrow, "lm_head"] and len(narrow) == 11 and len(layers) == 28 - 11
    assert all(model.get_submodule(name).in_features == 32 for name in narrow)
    for name in narrow:  # those are the checkpoint's weights, unchanged
        assert torch.equal(model.get_submodule(name).weight.detach().float(), reference[name])
    worst = largest = 0.0
    for name, layer in layers.items():
        state = layer.weight.quant_state
        assert (state.quant_type, state.blocksize, state.nested) == ("nf4", NF4_BLOCK, True)  # LLaMA-Factory's
        w = reference[name].reshape(-1, NF4_BLOCK)
        w_q = dequantize_4bit(layer.weight.data, state).float().reshape(-1, NF4_BLOCK)
        absmax = w.abs().amax(dim=1, keepdim=True)
        # w_q = level * absmax': the NF4 level nearest w / absmax, times the block's absmax as double quantization
        # stored it, so |w - w_q| <= absmax * half gap + |absmax - absmax'|
        centred = (absmax - absmax.mean()).flatten()
        spread = torch.cat(
            [group.abs().max().expand(len(group)) for group in centred.split(DOUBLE_QUANT_GROUP)]
        ).reshape(-1, 1)
        bound = absmax * nf4_half_gap(w / absmax) + DOUBLE_QUANT_HALF_GAP * spread
        error = (w - w_q).abs()
        assert (error <= bound * (1 + 1e-5)).all(), name
        worst, largest = max(worst, float((error / bound).max())), max(largest, float((error / absmax).max()))
    print(f"nf4, {len(layers)} layers: max |w - w_q| / bound {worst:.4f}, / block absmax {largest:.4f}")
    assert worst > 0.5  # rounding happened: the bound is approached, not trivially met


# ----- a quantized evaluation -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_scores_each_run_after_8_and_4_bit_quantization(
    tiny_model_dir: Path, lora_adapter: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out"
    config = yaml.safe_load((REPO / "yaml" / "eval_tiny.yaml").read_text())
    config.update(
        model_name_or_path=str(tiny_model_dir),
        adapter_name_or_path=str(lora_adapter),
        data_dir=str(synthetic_dir),
        output_dir=str(out),
        run_name="NPO+PD",
        max_new_tokens=6,
        limit=1,
        batch_size=6,
        seed=5,
        quantization_bits=[8, 4],
    )
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.time()
    proc = run_cli(["safeeraser", "eval", str(path)], timeout=900)
    print(f"quantized tiny-model eval (3 runs): {time.time() - started:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["NPO+PD", "NPO+PD@int8", "NPO+PD@int4"]
    assert sorted(folder.name for folder in out.iterdir() if folder.is_dir()) == sorted(names)
    kinds = ("efficacy", "generality", "sarr", "utility")
    responses = {}
    for name in names:
        results = json.loads((out / name / "results.json").read_text())
        run, bits = results["run"], quantized_of(name)[1]
        assert run["name"] == name and run["adapter"] == str(lora_adapter)
        assert run.get("quantization_bit") == bits
        if bits is None:
            assert "quantization" not in run
        else:
            assert run["quantization"]["library"].startswith("bitsandbytes ")
            assert run["quantization"]["method"].startswith("LLM.int8" if bits == 8 else "nf4")
        samples = [json.loads(line) for line in (out / name / "samples.jsonl").read_text().splitlines()]
        responses[name] = [sample["response"] for sample in samples]
        # scored like any run: each kind's rates are the means of its responses' scores
        for kind in kinds:
            rows = [sample["scores"] for sample in samples if sample["task_kind"] == kind]
            assert results["tasks"][kind]["n"] == len(rows) == len(CATEGORIES)
            for metric in metric_catalog.kind_metrics(kind):
                values = [row[metric] for row in rows]
                assert results["tasks"][kind]["metrics"][metric] == pytest.approx(sum(values) / len(values))
    assert all(len(responses[name]) == 4 * len(CATEGORIES) for name in names)
    # the quantized models generated: the same seeds, not all the same responses
    for name in names[1:]:
        same = sum(a == b for a, b in zip(responses[name], responses["NPO+PD"], strict=True))
        print(f"{name}: {same} of {len(responses[name])} responses as in full precision")
        assert same < len(responses[name])
    report = (out / "report.md").read_text()
    assert all(f"| {name} |" in report for name in names)
