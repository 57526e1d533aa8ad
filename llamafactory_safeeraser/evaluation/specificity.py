"""Specificity: the paper's average over seven general benchmarks, run by lmms-eval (an optional extra).

SafeEraser reports as "Spec" the mean of GQA, VizWiz, ScienceQA-IMG, VQAv2, POPE, MM-Vet and MMBench. lmms-eval
has all seven; :func:`evaluate_specificity` runs them on one model (a LoRA adapter is merged first: lmms-eval's
``llava_hf`` takes no adapter), one lmms-eval process per benchmark, and writes ``<run folder>/specificity.json``
beside ``results.json``, where ``safeeraser report`` finds it.

A task belongs to a benchmark when it is named like lmms-eval's task or starts with that name and ``_``
(``pope_local``: a copy of ``pope`` reading local files, found through ``include_path``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..devices import default_device
from ..errors import SafeEraserError
from ..fileio import read_json_document, write_json_atomic
from ..lmeval_task.judges.openai_compatible import judge_api_key
from ..settings import check_settings, setting, shared
from .lmeval_output import metric_value, task_results
from .merge import merge_adapter
from .results import RunSpec, model_location, run_folder_name, run_record
from .settings import EvalSettings

SPECIFICITY_FILE = "specificity.json"
SPECIFICITY_FORMAT = "safeeraser-specificity/1"
INSTALL_HINT = "pip install 'llamafactory-safeeraser[specificity]'"


@dataclass(frozen=True)
class Benchmark:
    name: str  # as the paper's table names it
    task: str  # lmms-eval's task
    metric: str  # the number reported, as lmms-eval names it
    scale: float  # what lmms-eval's value is out of (100: a percentage)
    graded: bool = False  # scored by a GPT grader through an OpenAI-compatible endpoint


BENCHMARKS = (
    Benchmark("GQA", "gqa", "exact_match", 1.0),
    Benchmark("VizWiz", "vizwiz_vqa_val", "exact_match", 1.0),
    Benchmark("ScienceQA-IMG", "scienceqa_img", "exact_match", 1.0),
    Benchmark("VQAv2", "vqav2_val", "exact_match", 1.0),
    Benchmark("POPE", "pope", "pope_f1_score", 1.0),  # F1, as LLaVA-1.5 reports POPE
    Benchmark("MM-Vet", "mmvet", "gpt_eval_score", 100.0, graded=True),
    Benchmark("MMBench", "mmbench_en_dev", "gpt_eval_score", 100.0, graded=True),
)
DEFAULT_TASKS = tuple(benchmark.task for benchmark in BENCHMARKS)


def benchmark_of(task: str) -> Benchmark:
    for benchmark in BENCHMARKS:
        if task == benchmark.task or task.startswith(benchmark.task + "_"):
            return benchmark
    names = ", ".join(benchmark.task for benchmark in BENCHMARKS)
    raise SafeEraserError(f"task '{task}' is none of the specificity benchmarks ({names}, or one of them + '_...')")


@dataclass(frozen=True)
class SpecificitySettings:
    tasks: tuple[str, ...] = setting(
        DEFAULT_TASKS,
        help="lmms-eval tasks, one per benchmark; a copy reading local files may add a suffix (pope_local)",
    )
    include_path: str | None = setting(help="lmms-eval --include_path: a folder of task YAMLs (local copies)")
    lmms_model: str = setting("llava_hf", help="lmms-eval's model class for the (merged) model")
    limit: int | None = setting(help="documents per benchmark, for quick runs (none: all)", minimum=1)
    batch_size: int = shared(EvalSettings, "batch_size")
    device: str | None = shared(EvalSettings, "device")
    grader_model: str | None = setting(help="MM-Vet and MMBench: the GPT grader (none: lmms-eval's gpt-4o-2024-11-20)")
    grader_base_url: str | None = setting(
        help="the grader's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (none: OpenAI's); key from env "
        "SAFEERASER_JUDGE_API_KEY or OPENAI_API_KEY"
    )
    timeout_s: float | None = None  # per benchmark (not a key: the Python API's)

    def __post_init__(self) -> None:
        check_settings(self)


def grader_env(benchmark: Benchmark, settings: SpecificitySettings) -> dict[str, str]:
    """The environment lmms-eval's graders read. MM-Vet reads OPENAI_API_URL as a base URL (``.../v1``),
    MMBench as the full chat-completions URL: each benchmark runs in its own process with its own value."""
    if not benchmark.graded:
        return {}
    env = {"API_TYPE": "openai", "OPENAI_API_KEY": judge_api_key()}
    if settings.grader_model:
        env["MODEL_VERSION"] = settings.grader_model
    if settings.grader_base_url:
        base = settings.grader_base_url.rstrip("/")
        env["OPENAI_API_URL"] = base + "/chat/completions" if benchmark.task.startswith("mmbench") else base
    return env


def lmms_eval_command(task: str, model_dir: Path, out_dir: Path, settings: SpecificitySettings) -> list[str]:
    device = default_device(settings.device)
    model_args = f"pretrained={model_dir},device={device},device_map={device}"
    command = [sys.executable, "-m", "lmms_eval", "--model", settings.lmms_model, "--model_args", model_args]
    command += ["--tasks", task, "--batch_size", str(settings.batch_size), "--output_path", str(out_dir)]
    if settings.limit is not None:
        command += ["--limit", str(settings.limit)]
    if settings.include_path:
        command += ["--include_path", str(Path(settings.include_path).resolve())]
    return command


def run_benchmark(task: str, model_dir: Path, work_dir: Path, settings: SpecificitySettings) -> dict[str, Any]:
    """One lmms-eval process on one task; its results document."""
    out_dir = work_dir / task
    env = {**os.environ, **grader_env(benchmark_of(task), settings)}
    proc = subprocess.run(
        lmms_eval_command(task, model_dir, out_dir, settings),
        env=env,
        capture_output=True,
        text=True,
        timeout=settings.timeout_s,
        check=False,
    )
    found = _results_document(out_dir)
    # lmms-eval logs a failed task and may still exit 0: no results document is the failure signal
    if proc.returncode != 0 or found is None:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise SafeEraserError(f"lmms-eval task '{task}' failed (exit {proc.returncode}): {last}")
    return found


def _results_document(out_dir: Path) -> dict[str, Any] | None:
    """lmms-eval's results file under ``out_dir`` (``<model>/<time>_results.json``; some tasks write other
    ``*_results.json`` files beside it, which hold no ``results`` key)."""
    for path in sorted(out_dir.glob("**/*_results.json"), reverse=True):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "results" in document and "configs" in document:
            return document
    return None


def summarize_specificity(
    run: RunSpec, raw: Mapping[str, Mapping[str, Any]], settings: SpecificitySettings, duration_s: float = 0.0
) -> dict[str, Any]:
    """specificity.json from lmms-eval's results documents (task -> document): each benchmark's score as a
    fraction, and ``specificity``, their mean, when all seven were run."""
    scores: dict[str, float | None] = {}
    tasks: dict[str, Any] = {}
    for task, document in raw.items():
        benchmark = benchmark_of(task)
        value = metric_value(task_results(document, task), benchmark.metric)  # lmms-eval writes lm-eval's layout
        number = None if value in (None, "N/A") else float(value) / benchmark.scale
        scores[benchmark.name] = number
        tasks[benchmark.name] = {
            "task": task,
            "metric": benchmark.metric,
            "value": value,
            "n": (document.get("n-samples") or {}).get(task, {}).get("effective"),
        }
    measured = [value for value in scores.values() if value is not None]
    complete = len(measured) == len(BENCHMARKS)  # the paper's Spec is the mean of all seven
    return {
        "format": SPECIFICITY_FORMAT,
        "run": run_record(run),
        "scores": {benchmark.name: scores[benchmark.name] for benchmark in BENCHMARKS if benchmark.name in scores},
        "specificity": sum(measured) / len(measured) if complete else None,
        "tasks": tasks,
        "settings": {
            "lmms_model": settings.lmms_model,
            "limit": settings.limit,
            "batch_size": settings.batch_size,
            "include_path": settings.include_path,
            "grader_model": settings.grader_model,
            "lmms_eval_version": next(iter(raw.values()), {}).get("lmms_eval_version"),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": round(duration_s, 1),
        },
        "lmms_eval": {task: document["results"] for task, document in raw.items()},
    }


def evaluate_specificity(run: RunSpec, settings: SpecificitySettings, output_dir: str | Path) -> Path:
    """Run the benchmarks on ``run`` and write ``<output_dir>/<run>/specificity.json``; returns its path."""
    if importlib.util.find_spec("lmms_eval") is None:
        raise SafeEraserError(f"lmms-eval is not installed; it is an optional extra: {INSTALL_HINT}")
    for task in settings.tasks:
        benchmark_of(task)  # a bad task name fails before any model loads
    started = time.time()
    folder = Path(output_dir) / run_folder_name(run.name)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".specificity-", dir=folder) as work:
        model_dir = Path(model_location(run.model))
        if run.adapter is not None:
            model_dir = merge_adapter(run.model, run.adapter, Path(work) / "merged")
        raw = {task: run_benchmark(task, model_dir, Path(work), settings) for task in settings.tasks}
    path = folder / SPECIFICITY_FILE
    write_json_atomic(path, summarize_specificity(run, raw, settings, time.time() - started))
    return path


def load_specificity(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's specificity.json, or None when it has none."""
    path = Path(run_dir) / SPECIFICITY_FILE
    if not path.is_file():
        return None
    return read_json_document(path, SPECIFICITY_FORMAT, "a specificity file")


def specificity_columns() -> Sequence[str]:
    return [benchmark.name for benchmark in BENCHMARKS]
