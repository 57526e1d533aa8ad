"""One-GPU check at the real scale: LLaVA-1.5-7B at full size (all 32 language and 24 vision layers, the released
config and tokenizer behaviour, random weights: nothing is downloaded), float16 weights as released, bf16
training, LoRA r32, 576 image tokens per row.

1. Training: one optimizer step (after a warm-up step) of LLaMA-Factory's SFT on a forget row and of every
   paper method (GA, GD, KL, PO, NPO) without and with PD, each with its recipe's keys (``yaml/llava7b_*.yaml``
   without DeepSpeed, one GPU): step time (median of ``--repeats``), peak GPU memory
   (``torch.cuda.max_memory_allocated``), the memory that stays between steps, and the ratio to SFT.
2. Evaluation: the ``safeeraser`` lm-eval group (``hf-multimodal``, batch ``--batch-size``) vs a per-sample
   ``generate`` loop (the reference's way) on the same prompts: responses per second.
3. ZeRO-2 vs DDP: NPO+PD's recipe trained ``--zero-steps`` optimizer steps (the first a warm-up) by
   LLaMA-Factory's loop in a fresh ``torchrun --nproc_per_node 1`` process each, with the recipe's
   ``examples/deepspeed/ds_z2_config.json`` and without (accelerate's DDP): step time, peak GPU memory, the
   memory held between steps (``zero_vs_ddp.py``). On one GPU ZeRO-2 partitions nothing, but it still keeps fp32
   master weights, steps AdamW on them and reduces gradients in buckets: its overhead over DDP, not its savings.
4. vLLM: the same evaluation as part 2 under lm-eval's ``vllm-vlm`` (``backend=vllm``: random weights via vLLM's
   ``load_format=dummy``, eager mode, half the GPU's memory): engine start-up seconds and responses per second,
   next to part 2's batched and per-sample figures. Skipped, with the reason printed, where vllm is missing.

Parts 1, 2 and 4 use the in-process model or GPU; part 3 runs its own processes (the model in this one stays).
Parts 1 and 2 share one model (``recipe_steps.shared_model``), freed before part 4. Work is started only within
``--budget-s`` (default 420 s; parts 3 and 4 only if their estimated length still fits, and their processes are
stopped a minute past it) and the rest is skipped, with a note in the JSON, if the budget is spent; a part that
fails (e.g. an incompatible library version) is recorded with its error and the next part still runs.
``--parts`` picks parts (default all).

``--quick``: the CPU, the LLaVA-1.5-7B shape model with the fewest layers (1 language, 2 vision) in bf16, no
warm-up, one repeat, 2 documents per subtask and 4 new tokens (tests/e2e/test_benchmarks.py runs it).

What the GPU machine needs (no network there; it brings its own torch and transformers, e.g. 2.11 / 5.17):
``benchmarks/gpu_wheels.sh`` writes the missing pure-Python wheels (LLaMA-Factory 0.9.5, PEFT 0.18.1,
TRL 0.24.0, lm-eval 0.4.13 and their small dependencies, about 12 MiB) into ``benchmarks/.gpu_wheels``; carry
that folder and run::

    pip install --no-deps benchmarks/.gpu_wheels/*.whl
    DISABLE_VERSION_CHECK=1 PYTHONPATH=. python benchmarks/gpu_check.py

``DISABLE_VERSION_CHECK=1`` lets LLaMA-Factory 0.9.5 start with a newer transformers than it lists; the
preflight section of the JSON records every version and any module still missing. ``gpu_wheels.sh
--with-deepspeed`` adds DeepSpeed (part 3; a 2 MiB pure-Python wheel, its CUDA ops unused: the recipes' AdamW is
torch's). vLLM's CUDA wheel (239 MB for 0.34.0, pinned to its own torch) does not fit in what that machine
receives: part 4 runs where vllm is already installed (``gpu_wheels.sh --with-vllm`` downloads it, for a machine
that takes it).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import eval_throughput
import recipe_steps

NAME = "gpu_check"
GIB = 2**30
# modules the training and evaluation paths import (their distributions: benchmarks/gpu_wheels.sh)
REQUIRED_MODULES = (
    "torch", "transformers", "accelerate", "datasets", "peft", "trl", "llamafactory", "lm_eval", "omegaconf",
    "sqlitedict", "word2number", "pytablewriter", "sacrebleu", "rouge_score", "evaluate", "PIL", "yaml",
)  # fmt: skip
VERSIONED = ("torch", "transformers", "accelerate", "datasets", "peft", "trl", "llamafactory", "lm_eval", "deepspeed",
             "vllm")  # fmt: skip
ZERO2_CONFIG = common.BENCH_DIR.parent / "examples" / "deepspeed" / "ds_z2_config.json"
# seconds a part needs at least (start-up included, measured on no GPU yet: estimates); it starts only if the
# budget leaves that much, and its processes are stopped HARD_EXTRA_S after the budget
ZERO_SETUP_S = 75.0  # one fresh process: imports, the 7B model on the GPU, the datasets, a few steps
VLLM_PART_S = 120.0  # vLLM's engine start-up (eager: no compilation, no CUDA graphs) and the generation
HARD_EXTRA_S = 60.0
# vllm-vlm's engine in this process: the shape folder has no weights (vLLM draws random ones), and part 2's
# model is freed first, but the allocator's cache and this process's CUDA context stay: half the GPU
VLLM_ENGINE_ARGS = {"load_format": "dummy", "enforce_eager": True, "gpu_memory_utilization": 0.5,
                    "dtype": "float16", "max_model_len": 4096}  # fmt: skip
VLLM_MISSING = (
    "vllm is not installed (its CUDA wheel, 239 MB for 0.34.0, is over the 64 MiB the GPU machine receives; "
    "benchmarks/gpu_wheels.sh --with-vllm)"
)


def preflight() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = version({"lm_eval": "lm_eval", "llamafactory": "llamafactory"}.get(name, name))
        except PackageNotFoundError:
            versions[name] = None
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {"versions": versions, "missing_modules": missing, "device": device, "gpu": gpu}


def training_part(
    folder: Path, data: common.Assets, device: str, configs: list, repeats: int, warmup: int, deadline: float
) -> dict[str, Any]:
    from llamafactory_safeeraser.offline.cpu_recipe import cpu_recipe

    results: list[dict[str, Any]] = []
    with recipe_steps.shared_model(device), tempfile.TemporaryDirectory() as out_dir:
        for config in configs:
            if time.time() > deadline:
                results.append({"label": config.label, "skipped": "time budget spent"})
                continue
            train = cpu_recipe(recipe_steps.recipe("llava7b", config.method, config.pd), folder, data.dataset_dir, 32)
            if device == "cuda":
                train.pop("use_cpu")
            train.update(output_dir=out_dir, train_from_scratch=True, report_to="none", save_strategy="no")
            step = recipe_steps.RecipeStep(config, train)
            for _ in range(warmup):
                step.step()
            flops = recipe_steps.count_flops(step.step)
            runs = [recipe_steps.measure(step.step, device) for _ in range(repeats)]
            static = step.static_bytes()
            results.append(
                {
                    "label": config.label,
                    "rows": step.rows,
                    "tokens": step.tokens,
                    "step_s": common.median(run["seconds"] for run in runs),
                    "step_s_all": [run["seconds"] for run in runs],
                    "peak_above_start_bytes": max(run["peak_bytes"] for run in runs),
                    "static_bytes": static,
                    "peak_bytes": sum(static.values()) + max(run["peak_bytes"] for run in runs),
                    "flops": flops,
                }
            )
            step.close()
            print(f"  {config.label}: {results[-1]['step_s']:.3f} s, peak {results[-1]['peak_bytes'] / GIB:.1f} GiB")
        model = recipe_steps.last_shared_model()
    sft = next(r for r in results if r["label"] == "SFT")
    for result in results:
        if "step_s" in result and "step_s" in sft:
            result["time_vs_sft"] = result["step_s"] / sft["step_s"]
            result["peak_vs_sft"] = result["peak_bytes"] / sft["peak_bytes"]
    return {"configs": results, "model": model}


def evaluation_part(model: Any, folder: Path, data: common.Assets, device: str, options: dict, deadline: float) -> dict:
    """lm-eval's batched path vs the per-sample loop on the same prompts, the in-memory model."""
    import torch

    from llamafactory_safeeraser.evaluation import EvalSettings, Evaluator, RunSpec
    from llamafactory_safeeraser.evaluation.processor_bos import one_bos_like_training

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # as lm-eval would load it: adapter and projector in the weights' dtype (training kept them in fp32)
    base.to(base.get_input_embeddings().weight.dtype).eval()
    base.config.use_cache = base.generation_config.use_cache = True  # training switched the KV cache off
    base.name_or_path = base.config.name_or_path = str(folder)  # hf-multimodal loads the processor from here

    class InMemoryEvaluator(Evaluator):
        def load_model(self, run: RunSpec) -> Any:
            from lm_eval.models.hf_vlms import HFMultimodalLM

            lm = HFMultimodalLM(pretrained=base, max_images=1, batch_size=self.settings.batch_size)
            one_bos_like_training(lm.processor)
            return lm

    settings = EvalSettings(
        data_dir=data.data_dir,
        harmful_samples=1,
        limit=options["limit"],
        batch_size=options["batch_size"],
        max_gen_toks=options["max_new_tokens"],
        seed=233,
        device=device,
    )
    with tempfile.TemporaryDirectory() as out_dir:
        lm_eval_s, samples = eval_throughput.run_lm_eval(InMemoryEvaluator(settings), folder, Path(out_dir))
    if time.time() > deadline:
        return {"lm_eval_s": lm_eval_s, "responses": len(samples), "per_sample_loop": "skipped: time budget spent"}
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    torch.manual_seed(233)
    start = time.perf_counter()
    eval_throughput.generate_each(base, processor, samples, options["max_new_tokens"])
    loop_s = time.perf_counter() - start
    count = len(samples)
    return {
        "responses": count,
        "batch_size": options["batch_size"],
        "max_new_tokens": options["max_new_tokens"],
        "lm_eval_s": lm_eval_s,
        "per_sample_loop_s": loop_s,
        "responses_per_s": {"lm_eval": count / lm_eval_s, "per_sample_loop": count / loop_s},
        "speedup": loop_s / lm_eval_s,
        "note": "the lm-eval time includes scoring and writing results; the loop's only generation",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def zero_part(folder: Path, data: common.Assets, steps: int, deadline: float) -> dict[str, Any]:
    """ZeRO-2 vs DDP on the same rows: one fresh single-process torchrun each (``zero_vs_ddp.py``)."""
    results: dict[str, Any] = {}
    for setup, deepspeed_config in (("ddp", None), ("zero2", ZERO2_CONFIG)):
        if deepspeed_config is not None and importlib.util.find_spec("deepspeed") is None:
            results[setup] = {"skipped": "deepspeed is not installed (benchmarks/gpu_wheels.sh --with-deepspeed)"}
        elif time.time() + ZERO_SETUP_S > deadline:
            results[setup] = {"skipped": "time budget spent"}
        else:
            results[setup] = zero_process(folder, data, steps, deepspeed_config, deadline + HARD_EXTRA_S)
        if "skipped" in results[setup] or "error" in results[setup]:
            print(f"  {setup}: {results[setup]}", flush=True)
        else:
            peak = results[setup]["peak_bytes"]
            print(f"  {setup}: {results[setup]['step_s']:.3f} s" + (f", peak {peak / GIB:.1f} GiB" if peak else ""))
    ddp, zero2 = results["ddp"], results["zero2"]
    if "step_s" in ddp and "step_s" in zero2:
        results["zero2_vs_ddp"] = {"step_time": zero2["step_s"] / ddp["step_s"]}
        for key in ("peak_bytes", "between_steps_bytes"):
            if ddp.get(key) and zero2.get(key):
                results["zero2_vs_ddp"][key.removesuffix("_bytes")] = zero2[key] / ddp[key]
    return results


def zero_process(
    folder: Path, data: common.Assets, steps: int, deepspeed_config: Path | None, hard_deadline: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
                   str(free_port()), str(common.BENCH_DIR / "zero_vs_ddp.py"), "--model-dir", str(folder),
                   "--dataset-dir", str(data.dataset_dir), "--steps", str(steps), "--out", str(out)]  # fmt: skip
        if deepspeed_config is not None:
            command += ["--deepspeed", str(deepspeed_config)]
        root = str(common.BENCH_DIR.parent)
        paths = [root, str(common.BENCH_DIR), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        timeout = max(hard_deadline - time.time(), 1.0) if hard_deadline != float("inf") else None
        try:
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": "stopped: past the time budget"}
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        return json.loads(out.read_text())


def vllm_part(folder: Path, data: common.Assets, device: str, options: dict, deadline: float) -> dict[str, Any]:
    """Part 2's evaluation under lm-eval's vllm-vlm: the engine's start-up and the generation, timed apart."""
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": VLLM_MISSING}
    if device != "cuda":
        return {"skipped": "vLLM's CUDA build needs the GPU"}
    if time.time() + VLLM_PART_S > deadline:
        return {"skipped": "time budget spent"}
    from llamafactory_safeeraser.evaluation import EvalSettings, Evaluator, RunSpec
    from llamafactory_safeeraser.evaluation.backends import lm_eval_model
    from llamafactory_safeeraser.evaluation.processor_bos import check_vllm_bos

    class VLLMEvaluator(Evaluator):
        load_s = 0.0

        def load_model(self, run: RunSpec) -> Any:
            from lm_eval.models.vllm_vlms import VLLM_VLM

            start = time.perf_counter()
            built = lm_eval_model("vllm", run, self.settings.batch_size, "cuda", self.settings.seed)
            lm = VLLM_VLM.create_from_arg_obj({**built.model_args, **VLLM_ENGINE_ARGS}, built.batch_args)
            check_vllm_bos(lm.processor)
            VLLMEvaluator.load_s = time.perf_counter() - start
            return lm

    settings = EvalSettings(data_dir=data.data_dir, harmful_samples=1, limit=options["limit"],
                            max_gen_toks=options["max_new_tokens"], seed=233, backend="vllm")  # fmt: skip
    with tempfile.TemporaryDirectory() as out_dir:
        total_s, samples = eval_throughput.run_lm_eval(VLLMEvaluator(settings), folder, Path(out_dir))
    generate_s = total_s - VLLMEvaluator.load_s
    return {
        "responses": len(samples),
        "max_new_tokens": options["max_new_tokens"],
        "engine_start_s": VLLMEvaluator.load_s,
        "lm_eval_s": generate_s,
        "responses_per_s": len(samples) / generate_s,
        "engine_args": VLLM_ENGINE_ARGS,
        "note": "lm_eval_s: the evaluation without the engine start-up (scoring and writing included, as part 2's)",
    }


def compare_generation(evaluation: dict[str, Any], vllm: dict[str, Any]) -> None:
    """vLLM's responses per second over part 2's batched and per-sample ones, where both ran."""
    rates = evaluation.get("responses_per_s")
    if rates and "responses_per_s" in vllm:
        vllm["speedup_vs_hf_batched"] = vllm["responses_per_s"] / rates["lm_eval"]
        vllm["speedup_vs_per_sample"] = vllm["responses_per_s"] / rates["per_sample_loop"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument(
        "--budget-s", type=float, default=None, help="start no new work after this (default 420; quick: no limit)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="lm-eval batch size (default 16; quick: 4)")
    parser.add_argument("--limit", type=int, default=None, help="documents per category subtask (default 4; quick: 1)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="per response (default 64; quick: 4)")
    parser.add_argument("--configs", default=None, help="comma-separated labels, SFT first (default: all)")
    parser.add_argument("--zero-steps", type=int, default=None, help="ZeRO-2 / DDP steps, 1 warm-up (default 3)")
    parser.add_argument(
        "--parts", default="training,evaluation,zero,vllm", help="comma-separated parts to run (default: all)"
    )
    args = parser.parse_args(argv)
    started = time.time()
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # LLaMA-Factory 0.9.5 lists transformers <= 5.6
    options = common.run_options(args, repeats=3, warmup=1)
    budget = args.budget_s or (float("inf") if options.quick else 420.0)
    deadline = started + budget
    report: dict[str, Any] = {"preflight": preflight()}
    print(f"preflight: {report['preflight']}", flush=True)
    device = report["preflight"]["device"]
    if not options.quick and device != "cuda":
        raise SystemExit("gpu_check: no GPU found; use --quick for the CPU smoke run")

    from llamafactory_safeeraser.offline.cpu_recipe import CPU_DTYPE

    data = common.ensure_shape_data(args.work_dir)
    layers = (None, None) if options.quick else ("full", "full")
    dtype = CPU_DTYPE if options.quick else "float16"  # the released checkpoint's dtype
    folder = args.work_dir / f"gpu-check-llava7b-{'min' if options.quick else 'full'}-{dtype}"
    recipe_steps.write_skeleton(folder, "llava", "shape7b", *layers, dtype)
    eval_options = {
        "batch_size": args.batch_size or (4 if options.quick else 16),
        # per category subtask (24 of them): 96 responses in full mode, 24 in quick mode
        "limit": args.limit or (1 if options.quick else 4),
        "max_new_tokens": args.max_new_tokens or (4 if options.quick else 64),
    }
    labels = args.configs.split(",") if args.configs else [config.label for config in recipe_steps.CONFIGS]
    configs = [config for config in recipe_steps.CONFIGS if config.label in labels]
    parts = set(args.parts.split(","))
    model = None
    if "training" in parts:
        try:
            training = training_part(folder, data, device, configs, options.repeats, options.warmup, deadline)
            model = training.pop("model")
            report["training"] = training
        except Exception as err:  # record and go on: the evaluation part may still run
            report["training"] = {"error": f"{type(err).__name__}: {err}"}
            print(f"training part failed: {report['training']['error']}", flush=True)
    if "evaluation" not in parts:
        pass
    elif model is None:
        report["evaluation"] = {"skipped": "no model: the training part failed or did not run"}
    else:
        try:
            report["evaluation"] = evaluation_part(model, folder, data, device, eval_options, deadline)
        except Exception as err:
            report["evaluation"] = {"error": f"{type(err).__name__}: {err}"}
            print(f"evaluation part failed: {report['evaluation']['error']}", flush=True)
    if "zero" in parts:
        print("ZeRO-2 vs DDP (NPO+PD):", flush=True)
        report["zero2_vs_ddp"] = zero_part(folder, data, args.zero_steps or (2 if options.quick else 3), deadline)
    model = None  # part 4's engine needs the GPU memory
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    if "vllm" in parts:
        try:
            report["vllm"] = vllm_part(folder, data, device, eval_options, deadline)
        except Exception as err:
            report["vllm"] = {"error": f"{type(err).__name__}: {err}"}
        if "responses_per_s" not in report["vllm"]:
            print(f"vllm part: {report['vllm']}", flush=True)
        compare_generation(report.get("evaluation", {}), report["vllm"])
    print_report(report)
    size = "shape7b, fewest layers" if options.quick else "7b, full"
    common.write_results(args.out, NAME, dataclasses.replace(options, size=size), report, started)
    return report


def print_report(report: dict[str, Any]) -> None:
    configs = report.get("training", {}).get("configs", [])
    rows = [
        [c["label"], c["rows"], c["tokens"], c["step_s"], c.get("time_vs_sft", float("nan")), c["peak_bytes"] / GIB,
         c.get("peak_vs_sft", float("nan")), c["flops"] / 1e12]
        for c in configs if "step_s" in c
    ]  # fmt: skip
    headers = ["config", "rows", "tokens", "step s", "time / SFT", "peak GiB", "peak / SFT", "TFLOP"]
    print(common.format_table(headers, rows))
    evaluation = report.get("evaluation", {})
    if "responses_per_s" in evaluation:
        rates = evaluation["responses_per_s"]
        print(
            f"evaluation: lm-eval {rates['lm_eval']:.2f} resp/s, per-sample loop {rates['per_sample_loop']:.2f} "
            f"resp/s ({evaluation['speedup']:.2f}x), {evaluation['responses']} responses"
        )
    vllm = report.get("vllm", {})
    if "responses_per_s" in vllm:
        print(f"vllm-vlm: {vllm['responses_per_s']:.2f} resp/s after {vllm['engine_start_s']:.0f} s start-up")
    ratio = report.get("zero2_vs_ddp", {}).get("zero2_vs_ddp")
    if ratio:
        print(f"ZeRO-2 / DDP: {ratio}")


if __name__ == "__main__":
    main()
