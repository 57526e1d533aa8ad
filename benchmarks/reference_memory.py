"""Reference memory: peak memory of KL/NPO with the reference as the disabled LoRA adapter vs GA and vs a copy.

Configurations (LoRA, the paper's settings, a few real optimizer steps with ``trainer.train()``):

- GA: no reference model, forget rows only (the issue's baseline);
- GD: no reference model, forget + retain rows (the same rows KL stacks);
- KL, NPO: the reference is the same weights with the adapter disabled (the plugin's default);
- KL, NPO with ``ref_model: <the model folder>``: a second full copy through LLaMA-Factory's
  ``create_ref_model``, as the reference code does.

Two measures, each configuration in a fresh Python process so nothing carries over:

- tensor peak: the torch profiler's CPU-allocator accounting (``profile_memory=True``), i.e. the
  highest total of live tensor bytes from before the model loads to the end of training, the CPU
  counterpart of ``torch.cuda.max_memory_allocated``;
- RSS peak: the process's peak resident set size (VmHWM, reset through /proc/self/clear_refs)
  minus its resident size after the imports (lazy ones included: see ``peak_rss_bytes``), i.e.
  what the OS sees, including allocator slack, the mmap'd checkpoint and Python objects.

``--quick`` runs the configurations in-process and measures tensor peaks only (RSS needs fresh
processes, each paying ~12 s of imports).

    python benchmarks/reference_memory.py [--batch-sizes 1,4] [--steps 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import common

NAME = "reference_memory"
TARGET = 1.10
RESULT_MARKER = "REFERENCE_MEMORY_RESULT "
MIB = 2**20


@dataclass(frozen=True)
class MemoryRun:
    label: str
    method: str
    second_copy: bool
    batch_size: int
    steps: int
    size: str
    work_dir: str
    measure: str  # "tensors" or "rss"


CONFIGS = (  # (label, method, second copy)
    ("GA", "ga", False),
    ("GD", "gd", False),
    ("KL", "kl", False),
    ("KL, second copy", "kl", True),
    ("NPO", "npo", False),
    ("NPO, second copy", "npo", True),
)


def train_a_few_steps(run: MemoryRun) -> None:
    """Build the run as `llamafactory-cli train` would and train ``run.steps`` optimizer steps."""
    assets = common.ensure_assets(Path(run.work_dir), run.size)
    overrides: dict[str, Any] = {"max_steps": run.steps, "logging_steps": 1000, "disable_tqdm": True}
    if run.second_copy:
        overrides["ref_model"] = str(assets.model_dir)
    with tempfile.TemporaryDirectory() as out_dir:
        config = common.unlearn_config(assets, run.method, False, run.batch_size, Path(out_dir), **overrides)
        trainer = common.build_unlearning_trainer(config)
        trainer.train()


def peak_tensor_bytes(run: MemoryRun) -> int:
    """Highest total of live CPU tensor bytes allocated while the run builds and trains."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_a_few_steps(run)
    cpu = torch._C._autograd.DeviceType.CPU
    memory_events = [
        event
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == cpu
    ]
    live = peak = 0
    for event in sorted(memory_events, key=lambda e: e.start_ns()):
        live += event.nbytes()  # negative for frees
        peak = max(peak, live)
    return peak


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def peak_rss_bytes(run: MemoryRun) -> int:
    """Peak resident set size during the run minus the resident size before it (fresh process only).

    A one-step run of the same configuration on the tiny model comes first, so that the modules
    LLaMA-Factory, transformers and datasets import lazily (~1 GB of RSS here) are in the baseline
    rather than in every configuration's peak; its few MB of freed tensors are all it leaves behind.
    """
    train_a_few_steps(replace(run, size="tiny", steps=1))
    gc.collect()
    baseline = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak) to the current RSS
    except OSError as err:
        raise RuntimeError(f"the RSS measure needs Linux's /proc/self/clear_refs ({err}); use --quick") from None
    train_a_few_steps(run)
    return (_status_kib("VmHWM") - baseline) * 1024


def measure(run: MemoryRun) -> int:
    return peak_tensor_bytes(run) if run.measure == "tensors" else peak_rss_bytes(run)


def measure_in_fresh_process(run: MemoryRun) -> int:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(run))]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=_child_env())
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return int(line[len(RESULT_MARKER) :])
    raise RuntimeError(f"{run.label} ({run.measure}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _child_env() -> dict[str, str]:
    import torch

    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


# the configuration without a reference that stacks the same rows (KL stacks retain rows, as GD does)
SAME_ROWS_WITHOUT_REFERENCE = {"ga": "GA", "gd": "GD", "kl": "GD", "npo": "GA"}


def add_ratios(runs: list[dict[str, Any]], measures: list[str]) -> None:
    """Each run's peak over GA's and over the same rows without a reference, at its batch size; the target."""

    def ratios(run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
        return {m: run["peak_bytes"][m] / baseline["peak_bytes"][m] for m in measures}

    for run in runs:
        same_batch = {r["label"]: r for r in runs if r["batch_size"] == run["batch_size"]}
        run["vs_ga"] = ratios(run, same_batch["GA"])
        run["vs_same_rows_without_reference"] = ratios(run, same_batch[SAME_ROWS_WITHOUT_REFERENCE[run["method"]]])
        if run["method"] in ("kl", "npo") and not run["second_copy"]:
            run["target"] = TARGET
            run["met"] = run["vs_ga"]["tensors"] <= TARGET


def print_table(runs: list[dict[str, Any]], measures: list[str]) -> None:
    headers = ["batch", "config"]
    for m in measures:
        headers += [f"{m} peak MiB", f"{m} / GA", f"{m} / same rows, no ref."]
    headers.append(f"target <= {TARGET:.2f}x GA")
    rows = []
    for r in runs:
        row = [r["batch_size"], r["label"]]
        for m in measures:
            row += [f"{r['peak_bytes'][m] / MIB:.1f}", r["vs_ga"][m], r["vs_same_rows_without_reference"][m]]
        row.append(("met" if r["met"] else "MISSED") if "met" in r else "-")
        rows.append(row)
    print(common.format_table(headers, rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default=None, help="per-device batch sizes (default 1,4; quick: 1)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 3; quick: 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one measurement
    args = parser.parse_args(argv)
    if args.child:  # one measurement in this fresh process
        print(RESULT_MARKER + str(measure(MemoryRun(**json.loads(args.child)))), flush=True)
        return {}
    started = time.time()
    options = common.run_options(args, repeats=1, warmup=0)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1" if options.quick else "1,4")).split(",")]
    steps = args.steps or (1 if options.quick else 3)
    measures = ["tensors"] if options.quick else ["tensors", "rss"]
    assets = common.ensure_assets(args.work_dir, options.size)  # build once, before any measurement
    common.ensure_assets(args.work_dir, "tiny")  # the RSS measure's warm-up model

    def memory_run(label: str, method: str, second_copy: bool, batch_size: int, which: str) -> MemoryRun:
        return MemoryRun(label, method, second_copy, batch_size, steps, options.size, str(args.work_dir), which)

    if options.quick:  # in-process: let one-time allocations (lazy globals, caches) happen before measuring
        measure(memory_run(*CONFIGS[0], batch_sizes[0], "tensors"))
    runs = []
    for batch_size in batch_sizes:
        for label, method, second_copy in CONFIGS:
            peaks = {}
            for which in measures:
                run = memory_run(label, method, second_copy, batch_size, which)
                peaks[which] = measure(run) if options.quick else measure_in_fresh_process(run)
            runs.append(
                {
                    "label": label,
                    "method": method,
                    "second_copy": second_copy,
                    "batch_size": batch_size,
                    "peak_bytes": peaks,
                }
            )
            shown = ", ".join(f"{k} {v / MIB:.1f} MiB" for k, v in peaks.items())
            print(f"batch {batch_size} {label}: {shown}", flush=True)

    add_ratios(runs, measures)
    model_bytes = sum(p.stat().st_size for p in assets.model_dir.glob("*.safetensors"))
    print(
        f"\nPeak memory, model {options.size} ({model_bytes / MIB:.1f} MiB of fp32 weights), {steps} optimizer steps\n"
    )
    print_table(runs, measures)
    results = {
        "target": TARGET,
        "steps": steps,
        "batch_sizes": batch_sizes,
        "measures": measures,
        "model_file_bytes": model_bytes,
        "runs": runs,
    }
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
