"""Evaluation in data-parallel processes: ``safeeraser eval`` with 2 processes vs 1 on the same documents.

Every path is the command a user runs (``safeeraser eval ... num_processes=N``), timed end to end: start-up,
model load, generation with sampling (the tasks' temperature 1, top-p 0.9), rule-judge scoring, files. Three
paths: one process with one thread, one process with every core (``OMP_NUM_THREADS`` = cores), and 2 processes
with half the cores each. They alternate for ``--repeats`` rounds and the medians are compared; every round also
checks that all wrote the same samples.jsonl (per-document seeds), so the speed-up is for the same results.

    python benchmarks/eval_parallel.py [--limit 4] [--max-new-tokens 32] [--batch-size 8]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

NAME = "eval_parallel"
PROCESSES = 2


def run_eval(
    assets: Any, out_dir: Path, num_processes: int, threads: int, limit: int, max_new_tokens: int, batch: int
) -> float:
    """Seconds of one ``safeeraser eval`` command with ``threads`` per process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [
        sys.executable,
        "-m",
        "llamafactory_safeeraser.cli",
        "eval",
        f"model_name_or_path={assets.model_dir}",
        f"data_dir={assets.data_dir}",
        f"output_dir={out_dir}",
        "run_name=bench",
        f"limit={limit}",
        f"max_new_tokens={max_new_tokens}",
        "harmful_samples=1",
        "document_seeds=true",  # the 1-process paths sample as the 2-process one does
        f"batch_size={batch}",
        f"num_processes={num_processes}",
        "device=cpu",
    ]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="documents per category subtask (default 4; quick 2, one per process)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, help="tokens per response (default 32; quick 4)")
    parser.add_argument("--batch-size", type=int, default=8, help="generation batch size per process")
    args = parser.parse_args(argv)
    started = time.time()
    options = common.run_options(args, repeats=3, warmup=1)
    limit = args.limit or (PROCESSES if options.quick else 4)
    max_new_tokens = args.max_new_tokens or (4 if options.quick else 32)
    assets = common.ensure_assets(args.work_dir, options.size)
    cores = os.cpu_count() or 1
    parallel = f"{PROCESSES} processes"
    # path -> (processes, threads per process)
    paths = {
        "1 process, 1 thread": (1, 1),
        f"1 process, {cores} threads": (1, cores),
        parallel: (PROCESSES, max(1, cores // PROCESSES)),
    }
    timings: dict[str, list[float]] = {path: [] for path in paths}
    with tempfile.TemporaryDirectory() as work:
        for round_index in range(options.warmup + options.repeats):
            outs = {path: Path(work) / f"{round_index}-{i}" for i, path in enumerate(paths)}
            seconds = {
                path: run_eval(assets, outs[path], *paths[path], limit, max_new_tokens, args.batch_size)
                for path in paths
            }
            samples = {path: (outs[path] / "bench" / "samples.jsonl").read_text() for path in paths}
            if len(set(samples.values())) != 1:
                raise SystemExit("the paths wrote different samples.jsonl")
            if round_index >= options.warmup:  # the first round pays one-time costs (file caches, compiled code)
                for path in paths:
                    timings[path].append(seconds[path])
            shown = ", ".join(f"{path} {value:.1f} s" for path, value in seconds.items())
            responses = samples[parallel].count("\n")
            print(f"round {round_index + 1}: {shown}; {responses} responses each, equal")
    medians = {path: common.median(values) for path, values in timings.items()}
    speedups = {path: medians[path] / medians[parallel] for path in paths if path != parallel}
    results = {
        "settings": {"limit": limit, "max_new_tokens": max_new_tokens, "batch_size": args.batch_size},
        "responses": responses,
        "timings": {path: common.summary(values) for path, values in timings.items()},
        "speedup_vs": speedups,
        "speedup": speedups["1 process, 1 thread"],
        "same_samples": True,
    }
    rows = [[path, f"{medians[path]:.1f}", f"{speedups[path]:.2f}x" if path in speedups else ""] for path in paths]
    print(common.format_table(["path", "median s", f"speed-up of {parallel}"], rows))
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
