"""What an evaluation writes and reads back: run folders, ``results.json`` and ``samples.jsonl``.

``OUT/<run name>/results.json`` holds one run's numbers (layout: :func:`summarize`), ``samples.jsonl`` one
line per response; the runner writes them, the report (and the demo) read them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.records import CATEGORIES
from ..errors import SafeEraserError
from ..fileio import read_json_document
from ..lmeval_task import metric_catalog
from ..lmeval_task.attacks.catalog import attack_task
from ..lmeval_task.documents import TaskOptions
from ..lmeval_task.scoring import FAILED, FAILURE_METRIC, JUDGEMENTS_KEY
from . import lmeval_output as lm

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FORMAT = "safeeraser-eval/1"


def headline() -> dict[str, tuple[str, str]]:
    """Headline numbers (the paper's table, results.json's ``summary``): column key -> (task kind, metric)."""
    return {h.key: (h.kind, h.metric.name) for h in metric_catalog.headline()}


@dataclass(frozen=True)
class RunSpec:
    """One model to evaluate: base model folder plus an optional LoRA adapter folder."""

    name: str
    model: str | Path
    adapter: str | Path | None = None
    quantization_bit: int | None = None  # evaluated after weight quantization to these bits (adapter merged)


def quantized_name(name: str, bits: int) -> str:
    """The run of ``name``'s model after weight quantization to ``bits``: ``GA+PD`` -> ``GA+PD@int4``."""
    return f"{name}@int{bits}"


def quantized_run(run: RunSpec, bits: int) -> RunSpec:
    """``run`` after weight quantization to ``bits``, named ``<name>@int<bits>``."""
    return RunSpec(quantized_name(run.name, bits), run.model, run.adapter, bits)


def with_quantized(runs: Sequence[RunSpec], bits: Sequence[int]) -> list[RunSpec]:
    """Each run followed by its quantized runs, one per bit width of ``bits``."""
    return [each for run in runs for each in (run, *(quantized_run(run, width) for width in bits))]


_QUANTIZED_SUFFIX = re.compile(r"^(?P<base>.+)@int(?P<bits>\d+)$")


def quantized_of(name: str) -> tuple[str, int | None]:
    """(base run name, bits) of a run name: ``NPO+PD@int4`` -> (``NPO+PD``, 4), ``NPO`` -> (``NPO``, None)."""
    match = _QUANTIZED_SUFFIX.match(name)
    return (match.group("base"), int(match.group("bits"))) if match else (name, None)


def run_folder_name(name: str) -> str:
    """A file-system-safe folder name that keeps names like ``GA+PD`` and ``GA+PD@int4`` readable."""
    cleaned = re.sub(r"[^A-Za-z0-9+_.=@-]+", "_", name).strip("._")
    if not cleaned:
        raise SafeEraserError(f"run name {name!r} has no usable characters")
    return cleaned


_PD_SUFFIX = re.compile(r"^(?P<method>.+?)\s*\+\s*PD$", re.IGNORECASE)


def pd_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(X, X+PD) name pairs among ``names``."""
    present = set(names)
    pairs = []
    for name in names:
        match = _PD_SUFFIX.match(name)
        if match and match.group("method") in present:
            pairs.append((match.group("method"), name))
    return pairs


def method_of(name: str) -> tuple[str, bool]:
    """(method, with PD) of a run name: ``GA+PD`` -> (``GA``, True), ``vanilla`` -> (``vanilla``, False);
    a quantized run's is its base run's (``NPO+PD@int4`` -> (``NPO``, True))."""
    base = quantized_of(name)[0]
    match = _PD_SUFFIX.match(base)
    return (match.group("method"), True) if match else (base, False)


def model_location(value: str | Path) -> str:
    """An existing local folder as an absolute path; anything else (a hub id such as
    ``llava-hf/llava-1.5-7b-hf``) unchanged."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else str(value)


def run_record(run: RunSpec) -> dict[str, Any]:
    """The ``run`` entry of the files a run writes: its name and where its model and adapter were; for a quantized
    run also ``quantization_bit`` and ``quantization`` (``library``, ``method``)."""
    record: dict[str, Any] = {
        "name": run.name,
        "model": model_location(run.model),
        "adapter": model_location(run.adapter) if run.adapter is not None else None,
    }
    if run.quantization_bit is not None:
        from ..integration.quantization import describe

        record["quantization_bit"] = run.quantization_bit
        record["quantization"] = describe(run.quantization_bit)
    return record


def find_run_folders(out_dir: str | Path) -> list[Path]:
    """Run folders (holding results.json) directly under ``out_dir``, oldest first."""
    folders = [path.parent for path in Path(out_dir).glob(f"*/{RESULTS_FILE}")]
    return sorted(folders, key=lambda folder: ((folder / RESULTS_FILE).stat().st_mtime_ns, folder.name))


def load_run_results(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's results.json; a clear one-line error when it is not one."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise SafeEraserError(f"{path}: not found (is {run_dir} a folder written by `safeeraser eval`?)")
    return read_json_document(path, RESULTS_FORMAT, "a SafeEraser results file")


def _judge_failures(samples: list[Mapping[str, Any]]) -> int:
    """Failed judge queries among logged samples (their documents carry the judgements)."""
    return sum(
        judgement["verdict"] == FAILED
        for sample in samples
        for judgement in (lm.sample_doc(sample).get(JUDGEMENTS_KEY) or {}).values()
    )


def _category_numbers(task_results: Mapping[str, Any], kind: str, samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A category subtask's numbers, as lm-eval aggregated them."""
    metrics = metric_catalog.kind_metrics(kind)
    return {
        **{metric: lm.metric_value(task_results, metric) for metric in metrics},
        "n": len(samples),
        FAILURE_METRIC: _judge_failures(samples),
        "stderr": {metric: lm.metric_stderr(task_results, metric) for metric in metrics},
    }


def _pooled_numbers(kind: str, samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A kind's numbers over all its responses, with the estimator lm-eval applies to each subtask (``mean``
    and its standard error). lm-eval's group row weights the categories' means by their sizes, which is the
    same value unless a judge failed, but its standard error pools the within-category spreads only."""
    from lm_eval.api.metrics import mean, mean_stderr

    metrics: dict[str, Any] = {}
    stderr: dict[str, float | None] = {}
    for metric in metric_catalog.kind_metrics(kind):
        values = [value for value in (lm.sample_value(sample, metric) for sample in samples) if value is not None]
        metrics[metric] = mean(values) if values else None
        stderr[metric] = mean_stderr(values) if len(values) > 1 else None
    metrics[FAILURE_METRIC] = _judge_failures(samples)
    return {"n": len(samples), "metrics": metrics, "stderr": stderr}


def summarize(
    run: RunSpec,
    raw: Mapping[str, Any],
    settings: Any,
    options: TaskOptions,
    judge_stats: Mapping[str, int] | None = None,
    duration_s: float = 0.0,
) -> dict[str, Any]:
    """The results.json document of one run (``settings``: its EvalSettings), from lm-eval's raw results
    (``raw``, with logged samples). Fractions in 0..1; None where nothing was measured.

    Layout: ``run``; ``summary`` (the paper's headline columns) and ``summary_stderr``; ``tasks.<kind>`` (the
    lm-eval group ``safeeraser_<kind>``) with ``task``, ``n`` (responses), ``metrics`` (overall values over every
    rated response of the kind, and ``judge_failures``, the failed judge queries), ``stderr`` (the standard error
    of each value) and ``per_category.<Category>`` (from lm-eval's subtask ``safeeraser_<kind>_<category>``: each
    value, ``n``, ``judge_failures`` and ``stderr``);
    ``attacks.<attack>.<kind>`` (from lm-eval's task ``safeeraser_attack_<attack>_<kind>``, present when an attack
    task ran) with ``task``, ``family``, ``strength``, ``n``, ``metrics`` and ``stderr`` pooled as for ``tasks``;
    ``judge_failures`` per task kind of the plain tasks and in total; ``judge`` (settings and request counters, never
    the API key); ``settings``; ``lm_eval`` (raw numbers).
    """
    from importlib.metadata import version

    tasks: dict[str, Any] = {}
    for kind in lm.reported_kinds(raw):
        per_category = {
            category: _category_numbers(
                lm.subtask_results(raw, kind, category), kind, lm.subtask_samples(raw, kind, category)
            )
            for category in CATEGORIES
        }
        tasks[kind] = {"task": lm.kind_group(kind), **_pooled_numbers(kind, lm.kind_samples(raw, kind))}
        tasks[kind]["per_category"] = per_category

    attacks: dict[str, dict[str, Any]] = {}
    for attack, kind in lm.reported_attacks(raw):
        task = attack_task(attack.name, kind)
        numbers = _pooled_numbers(kind, lm.task_samples(raw, task))
        attacks.setdefault(attack.name, {})[kind] = {
            "task": task,
            "family": attack.family,
            "strength": attack.strength,
            **numbers,
        }

    failures = {kind: task["metrics"][FAILURE_METRIC] for kind, task in tasks.items()}
    failures["total"] = sum(failures.values())
    columns = headline()
    return {
        "format": RESULTS_FORMAT,
        "run": run_record(run),
        "summary": {
            column: tasks[kind]["metrics"][metric] if kind in tasks else None
            for column, (kind, metric) in columns.items()
        },
        "summary_stderr": {
            column: tasks[kind]["stderr"][metric] if kind in tasks else None
            for column, (kind, metric) in columns.items()
        },
        "tasks": tasks,
        **({"attacks": attacks} if attacks else {}),
        "judge_failures": failures,
        "judge": {"config": json.loads(options.judge.to_json()), "stats": dict(judge_stats or {})},
        "settings": {
            "harmful_samples": settings.harmful_samples,
            "generation_kwargs": lm.generation_kwargs(raw),
            "limit": settings.limit,
            "batch_size": settings.batch_size,
            "template": settings.template,
            "image_max_pixels": settings.image_max_pixels,
            "image_min_pixels": settings.image_min_pixels,
            "sarr_question": settings.sarr_question,
            "seed": settings.seed,
            "device": lm.device(raw) or settings.device,
            "tasks": list(settings.tasks),
            "data_files": {"train": _str_or_none(options.train_file), "val": _str_or_none(options.val_file)},
            "lm_eval_version": version("lm_eval"),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": round(duration_s, 1),
        },
        "lm_eval": lm.raw_numbers(raw),
    }


def _str_or_none(value: Path | None) -> str | None:
    return None if value is None else str(value)


# Everything of the lm-eval document but its judge settings (results.json holds those once).
_SAMPLE_DOC_FIELDS = (
    "task_kind",
    "record",
    "category",
    "keyword",
    "item",
    "sample",
    "question",
    "image_path",
    "prompt",
    "reference",
    "source_file",
)
# The attack tasks' documents add these (the plain tasks' lines go without them).
_ATTACK_DOC_FIELDS = ("attack", "attack_family", "attack_strength", "attack_question")


def samples_jsonl(raw: Mapping[str, Any]) -> str:
    """One JSON line per response: where it came from, what the model said, and its scores."""
    lines = []
    for task_name, sample in lm.logged_samples(raw):
        doc = lm.sample_doc(sample)
        line = {
            "task": task_name,
            "doc_id": lm.sample_doc_id(sample),
            **{key: doc.get(key) for key in _SAMPLE_DOC_FIELDS},
            **{key: doc[key] for key in _ATTACK_DOC_FIELDS if key in doc},
        }
        line["response"] = lm.sample_response(sample)
        line["scores"] = lm.sample_scores(sample)
        line[JUDGEMENTS_KEY] = doc.get(JUDGEMENTS_KEY) or {}
        lines.append(json.dumps(line, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
