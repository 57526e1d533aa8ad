"""``safeeraser eval`` over N data-parallel processes: one torchrun job, one results.json and samples.jsonl.

The parent writes the runs and settings to a job file and launches ``torch.distributed.run`` on ``parallel_worker``
(gloo on CPU, one GPU per process where there are several). Every process loads the model and lm-eval splits the
documents over them (``lmeval_task.seeded_hf``: rank r takes documents r, r+N, ...); each request samples with
its own per-document seed, so a document's response is the one a single process gives it. lm-eval gathers the
logged samples and metrics to rank 0, which writes the run's files (samples in doc_id order, as one process
writes them); the judge's counters are summed over the processes. A SafeEraserError in a worker reaches the
parent as its one line.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from .results import RESULTS_FILE, RunSpec, run_folder_name
from .settings import EvalSettings

WORKER_MODULE = "llamafactory_safeeraser.evaluation.parallel_worker"
JOB_FILE = "job.pkl"
ERROR_FILE = "error.txt"


def world() -> tuple[int, int]:
    """(rank, number of processes) of this process in a torchrun / accelerate job; (0, 1) outside one."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def merge_judge_outcome(stats: Mapping[str, int], stopped: str | None) -> tuple[dict[str, int], str | None]:
    """The judge's counters summed over the processes, and the first process's reason to stop (if any)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(stats), stopped
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (dict(stats), stopped))
    total: dict[str, int] = {}
    for rank_stats, _ in gathered:
        for key, value in rank_stats.items():
            total[key] = total.get(key, 0) + value
    return total, next((reason for _, reason in gathered if reason is not None), None)


def worker_env(num_processes: int) -> dict[str, str]:
    """The workers' environment: the CPU cores shared out (unless OMP_NUM_THREADS is set), no tokenizer threads."""
    threads = max(1, (os.cpu_count() or 1) // num_processes)
    return {"OMP_NUM_THREADS": str(threads), **os.environ, "TOKENIZERS_PARALLELISM": "false"}


def launch(runs: Sequence[RunSpec], settings: EvalSettings, out_dir: str | Path, num_processes: int) -> list[Path]:
    """Evaluate ``runs`` one after another, each over ``num_processes`` processes; return their folders."""
    if settings.backend != "hf":  # vLLM schedules its own batches over the GPUs it sees
        raise SafeEraserError(f"num_processes={num_processes} needs backend=hf, got backend={settings.backend}")
    if settings.limit is not None and settings.limit < num_processes:  # lm-eval fails a process left without documents
        raise SafeEraserError(
            f"num_processes={num_processes} needs at least that many documents per category subtask, "
            f"got limit={settings.limit}"
        )
    settings = dataclasses.replace(settings, document_seeds=True)  # the split must not change the samples
    with tempfile.TemporaryDirectory(prefix="safeeraser-eval-") as job_dir:
        job = Path(job_dir)
        (job / JOB_FILE).write_bytes(pickle.dumps((list(runs), settings, str(out_dir))))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={num_processes}",
            "-m",
            WORKER_MODULE,
            job_dir,
        ]
        proc = subprocess.run(command, env=worker_env(num_processes), check=False)
        if (job / ERROR_FILE).is_file():
            raise SafeEraserError((job / ERROR_FILE).read_text().strip())
        if proc.returncode != 0:
            raise SafeEraserError(f"the {num_processes} evaluation processes failed (exit code {proc.returncode})")
    folders = [Path(out_dir) / run_folder_name(run.name) for run in runs]
    missing = [str(folder) for folder in folders if not (folder / RESULTS_FILE).is_file()]
    if missing:
        raise SafeEraserError(f"the evaluation processes wrote no {RESULTS_FILE} in {', '.join(missing)}")
    return folders
