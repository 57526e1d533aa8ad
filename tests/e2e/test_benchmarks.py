"""Smoke test of the benchmark scripts: each runs in --quick mode and writes well-formed JSON.

The scripts run in this process (their imports are already paid for) on the session's tiny
model and synthetic data. Only the structure and the sanity of the numbers are checked, never a
timing: on a shared 2-core machine timings say nothing about correctness. memory_model.py and
gpu_check.py run on the LLaVA-1.5-7B shape model, in the `shape` tier (their arithmetic: fast tier).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.benchmarks  # their own tier: scripts/test.sh benchmarks (the shape ones: the shape tier)
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = ("step_cost", "fused_vs_separate", "reference_memory", "npo_cache", "eval_throughput")


@pytest.fixture(scope="module")
def run_script(tiny_model_dir: Path, synthetic_dir: Path, prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Call a script's ``main`` with --quick on a work dir that reuses the session's model and data."""
    import torch

    work_dir = tmp_path_factory.mktemp("bench_work")
    for name, target in (("llava-tiny", tiny_model_dir), ("data", synthetic_dir), ("datasets", prepared_dir)):
        (work_dir / name).symlink_to(target, target_is_directory=True)
    out_dir = tmp_path_factory.mktemp("bench_out")
    sys.path.insert(0, str(BENCHMARKS))
    threads = torch.get_num_threads()

    def run(name: str) -> dict:
        module = importlib.import_module(name)
        out = out_dir / f"{name}.json"
        module.main(["--quick", "--threads", "1", "--work-dir", str(work_dir), "--out", str(out)])
        return json.loads(out.read_text())

    yield run
    torch.set_num_threads(threads)
    sys.path.remove(str(BENCHMARKS))


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_timings(timings: dict, names: set[str]) -> None:
    assert set(timings) == names
    for summary in timings.values():
        assert summary["n"] == len(summary["values_s"]) >= 1
        assert all(positive(v) for v in (summary["median_s"], summary["min_s"], summary["max_s"], *summary["values_s"]))


def check_document(document: dict, name: str) -> None:
    assert document["benchmark"] == name
    assert document["quick"] is True and document["model_size"] == "tiny"
    assert positive(document["machine"]["torch_threads"]) and document["machine"]["cpu_model"]


def test_step_cost(run_script):
    document = run_script("step_cost")
    check_document(document, "step_cost")
    assert positive(document["matmul"]["gflops"])
    labels = [config["label"] for config in document["configs"]]
    assert labels == [f"{m.upper()}{pd}" for m in ("ga", "gd", "kl", "po", "npo") for pd in ("", "+PD")]
    for config in document["configs"]:
        names = {"unlearning_step", "sft_step"} | (
            {"reference_forward"} if config["method"] in ("kl", "npo") else set()
        )
        check_timings(config["timings"], names)
        assert all(positive(config[key]) for key in ("ratio", "target", "floor_s", "unlearning_over_floor"))
        assert config["target"] >= document["target"]
        assert isinstance(config["met"], bool)
        flops = config["flops"]
        assert all(positive(flops[key]) for key in ("forward_flops", "backward_flops", "total_flops", "real_tokens"))
        assert flops["padded_tokens"] >= flops["real_tokens"]
        assert ("pd" in config["sets"]) == config["pd"]


def test_fused_vs_separate(run_script):
    document = run_script("fused_vs_separate")
    check_document(document, "fused_vs_separate")
    assert set(document["scenarios"]) == {"as-is", "long-forget"}
    for rows in document["scenarios"].values():
        assert [row["batch_size"] for row in rows] == document["batch_sizes"]
        for row in rows:
            check_timings(row["timings"], {"fused", "separate"})
            assert positive(row["separate_over_fused"]) and row["winner"] in ("fused", "separate")
            assert (
                row["fused_padded_tokens"] >= row["real_tokens"] and row["separate_padded_tokens"] >= row["real_tokens"]
            )
    # the long-forget data pads the short rows of a stacked batch far more than the data as is
    long_rows, as_is = document["scenarios"]["long-forget"][-1], document["scenarios"]["as-is"][-1]
    assert (
        long_rows["fused_padded_tokens"] / long_rows["real_tokens"]
        > as_is["fused_padded_tokens"] / as_is["real_tokens"]
    )


def test_reference_memory(run_script):
    document = run_script("reference_memory")
    check_document(document, "reference_memory")
    assert document["measures"] == ["tensors"]  # quick: in-process, tensor peaks only
    runs = {run["label"]: run for run in document["runs"]}
    assert set(runs) == {"GA", "GD", "KL", "KL, second copy", "NPO", "NPO, second copy"}
    for run in runs.values():
        assert positive(run["peak_bytes"]["tensors"]) and positive(run["vs_ga"]["tensors"])
    assert isinstance(runs["KL"]["met"], bool) and isinstance(runs["NPO"]["met"], bool)
    # exact allocator accounting: a second model copy is always visible
    for method in ("KL", "NPO"):
        extra = runs[f"{method}, second copy"]["peak_bytes"]["tensors"] - runs[method]["peak_bytes"]["tensors"]
        assert extra > 0.5 * document["model_file_bytes"]


def test_npo_cache(run_script):
    document = run_script("npo_cache")
    check_document(document, "npo_cache")
    check_timings(document["timings"], {"recomputed", "cached"})
    assert document["cached_rows"] == document["batch_size"]
    assert document["max_abs_difference_cached_vs_fresh"] < 1e-4
    assert all(math.isfinite(document[key]) for key in ("saving_per_step_s", "saving_whole_run_fraction"))


def test_eval_throughput(run_script):
    document = run_script("eval_throughput")
    check_document(document, "eval_throughput")
    assert isinstance(document["met_at_longest"], bool) and document["lengths"]
    for row in document["lengths"]:
        check_timings(row["timings"], {"lm_eval", "per_sample_loop"})
        assert row["responses"] == 4 * 6 * document["limit_per_task"]  # four kinds, six category subtasks each
        assert all(positive(v) for v in row["responses_per_s"].values())
        assert all(positive(v) for v in row["mean_generated_tokens"].values())
        assert positive(row["speedup"]) and isinstance(row["met"], bool)


@pytest.mark.slow  # two `safeeraser eval` commands, one of them over 2 processes
def test_eval_parallel(run_script):
    document = run_script("eval_parallel")
    check_document(document, "eval_parallel")
    assert "2 processes" in document["timings"] and len(document["timings"]) == 3
    check_timings(document["timings"], set(document["timings"]))
    assert document["same_samples"] is True and document["responses"] == 4 * 6 * document["settings"]["limit"]
    assert positive(document["speedup"])


# ----- the memory model and the GPU check (shape models) ----------------------------------------------
def load_benchmark(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_memory_model_extrapolates_per_layer_and_shards_as_documented():
    """The arithmetic of docs/performance.md's memory model, on hand-made measurements."""
    memory_model = load_benchmark("memory_model")
    shape = memory_model.Shape("x", "llava", "shape7b", 1, 2, 32, missing_vision_layers=22)
    small = {"seconds": 10.0, "peak_bytes": 100.0, "flops": 1000.0, "rows": 2, "reference_rows": 1}
    small["static"] = {"frozen": 1000, "trainable": 50, "adam": 100}
    large = {"seconds": 12.0, "peak_bytes": 110.0, "flops": 1100.0}
    large["static"] = {"frozen": 1400, "trainable": 60, "adam": 120}
    full = memory_model.extrapolate(shape, small, large, {"seconds": 0.5, "flops": 7.0}, 20000.0, gpus=2, rate=2.0)
    # 31 more layers: trainable 50 + 31*10, AdamW 100 + 31*20, step peak 100 + 31*10 (gradients 360 of it)
    assert full["static_bytes"] == {"frozen": 20000.0, "trainable": 360, "adam": 720}
    assert full["step_peak_bytes"] == 410.0
    assert full["per_gpu_bytes"] == {
        "ddp": 20000 + 360 + 720 + 410,
        "zero2": 20000 + 360 + (720 + 360) / 2 + (410 - 360),
        "zero3": (20000 + 360 + 720 + 360) / 2 + (410 - 360) + 400,  # + one gathered layer (1400 - 1000)
    }
    # 3 images encoded (2 rows + the reference's row), 22 vision layers each; time: FLOPs at the rate
    assert full["step_flops"] == 1000 + 31 * 100 + 66 * 7
    assert full["cpu_step_seconds"] == full["step_flops"] / 2.0
    assert full["per_layer"]["seconds"] == 100 / 2.0


# rows each configuration stacks (batch 1): forget, and retain/refusal and PD rows where the method has them
ROWS = {"SFT": 1, "GA": 1, "GA+PD": 2, "GD": 2, "GD+PD": 3, "KL": 2, "KL+PD": 3, "PO": 2, "PO+PD": 3, "NPO": 1}
ROWS["NPO+PD"] = 2


@pytest.mark.shape
@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["llava7b", "gemma3"])
def test_memory_model_counts_the_static_bytes_its_runs_measured(prefix: str):
    """The counted static bytes (meta device, no step) equal the committed runs' (AdamW: up to its step counters)."""
    memory_model = load_benchmark("memory_model")
    measured_run = json.loads((REPO / f"benchmarks/results/memory_model_{prefix}.json").read_text())
    measured = measured_run["models"][prefix]["configs"][0]["full"]["static_bytes"]
    counted = memory_model.counted_static(prefix)
    assert (counted["frozen"], counted["trainable"]) == (measured["frozen"], measured["trainable"])
    assert 0 <= measured["adam"] - counted["adam"] < 4096


def test_memory_model_quick_on_the_llava_7b_shape(tmp_path: Path):
    memory_model = load_benchmark("memory_model")
    out = tmp_path / "memory_model.json"
    memory_model.main(["--quick", "--work-dir", str(tmp_path / "work"), "--out", str(out)])
    document = json.loads(out.read_text())
    assert document["benchmark"] == "memory_model" and document["quick"] is True
    model = document["models"]["llava7b"]
    assert model["shape"]["text_layers"] == 1 and model["shape"]["full_text_layers"] == 32
    assert positive(model["vision_per_layer"]["flops"])
    configs = {config["label"]: config for config in model["configs"]}
    assert set(configs) == {"SFT", "GA+PD"}
    for label, config in configs.items():
        assert config["rows"] == ROWS[label]
        small, large = config["runs"]
        # one more layer: its bf16 weights (exactly one Llama-7B decoder layer: attention, MLP, two RMSNorms)
        # and its LoRA adapters in fp32
        layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
        assert large["static"]["frozen"] - small["static"]["frozen"] == 2 * layer
        lora = 32 * (4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096))
        assert large["static"]["trainable"] - small["static"]["trainable"] == 4 * lora
        full = config["full"]
        assert all(positive(v) for v in full["per_gpu_bytes"].values())
        assert full["per_gpu_bytes"]["zero3"] < full["per_gpu_bytes"]["zero2"] <= full["per_gpu_bytes"]["ddp"]
    # PD stacks a second row: more activation memory, the same weights
    assert configs["GA+PD"]["full"]["step_peak_bytes"] > configs["SFT"]["full"]["step_peak_bytes"]
    assert configs["GA+PD"]["full"]["static_bytes"] == configs["SFT"]["full"]["static_bytes"]


@pytest.mark.shape
@pytest.mark.slow
def test_gpu_check_quick_runs_every_configuration_and_both_evaluation_paths(tmp_path: Path, capsys):
    import importlib.util

    gpu_check = load_benchmark("gpu_check")
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--quick", "--work-dir", str(tmp_path / "work"), "--out", str(out)])
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    assert document["preflight"]["missing_modules"] == []
    configs = {config["label"]: config for config in document["training"]["configs"]}
    assert set(configs) == set(ROWS)
    for label, config in configs.items():
        assert config["rows"] == ROWS[label], label
        assert positive(config["step_s"]) and positive(config["flops"])
    # exact accounting: the peak grows with the stacked rows; a reference forward (KL, NPO) adds FLOPs and
    # its transient logits on top of the same rows without one (GD, GA)
    peak = {label: config["peak_above_start_bytes"] for label, config in configs.items()}
    assert peak["GD+PD"] > peak["GD"] > peak["GA"] and peak["KL+PD"] > peak["KL"] > peak["NPO"]
    assert peak["KL"] >= peak["GD"] and peak["NPO"] >= peak["GA"]
    assert configs["KL"]["flops"] > configs["GD"]["flops"] and configs["NPO"]["flops"] > configs["GA"]["flops"]
    evaluation = document["evaluation"]
    assert evaluation["responses"] == 4 * 6  # four kinds of six category subtasks, one document each
    assert all(positive(v) for v in evaluation["responses_per_s"].values())
    # ZeRO-2 vs DDP: NPO+PD's recipe through LLaMA-Factory's loop in a single-process torchrun (gloo on a CPU)
    zero = document["zero2_vs_ddp"]
    ddp = zero["ddp"]
    assert ddp["setup"] == "ddp" and ddp["optimizer"] == "AdamW" and len(ddp["steps"]) == 2
    assert positive(ddp["step_s"]) and ddp["step_s"] == ddp["steps"][1]["seconds"]  # step 1: the warm-up
    assert ddp["distributed_type"] == "DistributedType.MULTI_CPU"  # torchrun's environment: accelerate's DDP
    if importlib.util.find_spec("deepspeed") is None:
        assert zero["zero2"] == {"skipped": "deepspeed is not installed (benchmarks/gpu_wheels.sh --with-deepspeed)"}
        assert "zero2: {'skipped': 'deepspeed is not installed" in printed
    else:
        assert zero["zero2"]["distributed_type"] == "DistributedType.DEEPSPEED"
        assert positive(zero["zero2_vs_ddp"]["step_time"])
    # vLLM: a CPU is no place for it; the reason is recorded and printed
    vllm = document["vllm"]
    expected = gpu_check.VLLM_MISSING if importlib.util.find_spec("vllm") is None else "vLLM's CUDA build needs the GPU"
    assert vllm == {"skipped": expected} and f"vllm part: {vllm}" in printed
