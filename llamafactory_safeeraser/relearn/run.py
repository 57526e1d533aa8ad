"""Relearning attacks on unlearned runs: merge, split, relearn with ``llamafactory-cli train``, re-score, report.

Per run (``OUT/<run>/``, written atomically: a failed run leaves nothing behind) and per seed: the forget
records are split (``split``); the held share becomes a LLaMA-Factory SFT dataset and one relearning run
trains a new LoRA adapter on the merged unlearned model (``train``); after every scored step count the
model is evaluated with the ``safeeraser`` lm-eval tasks on the rest (``evaluation.runner.Evaluator``).
``OUT/<run>/relearn.json`` holds the points and the curve; ``OUT/report.md`` and ``OUT/report.png`` cover
every run folder in ``OUT``, so separate calls into one folder compare in one report.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.records import SafeEraserRecord, load_raw_records, read_benchmark
from ..data.relocate import relocated
from ..evaluation.merge import merge_adapter
from ..evaluation.results import RunSpec, model_location, run_folder_name
from ..evaluation.runner import Evaluator, check_runs
from ..fileio import check_output_folder, output_folder, write_json_atomic
from .curve import aggregate
from .report import RELEARN_FILE, RELEARN_FORMAT, find_relearn_folders, write_relearn_report
from .settings import RelearnSettings
from .split import split_records
from .train import checkpoint, relearn_config, run_llamafactory_train, write_relearn_dataset

Progress = Callable[[str], None]
LOG_DIR = "logs"  # training logs live outside the run folders: a failed run's log survives its folder


def relearn_runs(
    runs: Sequence[RunSpec], settings: RelearnSettings, out_dir: str | Path, progress: Progress | None = print
) -> Path:
    """Relearn every run into ``out_dir/<run>/`` one after another, then write ``out_dir/report.md``; returns it."""
    say = progress or (lambda message: None)
    check_runs(runs)
    out = Path(out_dir)
    folders = [out / run_folder_name(run.name) for run in runs]
    inputs = [settings.data_file("train"), settings.data_file("val")]
    inputs += [path for run in runs for path in (run.model, run.adapter) if path is not None and Path(path).exists()]
    for folder in folders:
        check_output_folder(folder, "relearn", settings.overwrite, inputs, what="run folder")
    train_file = settings.data_file("train")
    records = read_benchmark(train_file)
    read_benchmark(settings.data_file("val"))  # bad generality data fails before any training
    raw_records = load_raw_records(train_file)
    split_records(records, settings.relearn_share, settings.seeds[0])  # too few records fails here too
    for run, folder in zip(runs, folders, strict=True):
        with output_folder(folder, "relearn", settings.overwrite, inputs, what="run folder") as scratch:
            document = relearn_run(run, settings, records, raw_records, scratch, out / LOG_DIR, say)
            write_json_atomic(scratch / RELEARN_FILE, document)
        say(f"{run.name}: done -> {folder}")
    return write_relearn_report(find_relearn_folders(out), out / "report.md")


def relearn_run(
    run: RunSpec,
    settings: RelearnSettings,
    records: Sequence[SafeEraserRecord],
    raw_records: Sequence[Any],
    folder: Path,
    log_dir: Path,
    say: Progress,
) -> dict[str, Any]:
    """One run, every seed, in ``folder``; returns its relearn.json document."""
    started = time.time()
    model_dir: str | Path = model_location(run.model)
    if run.adapter is not None:
        model_dir = merge_adapter(run.model, run.adapter, folder / "merged")
        say(f"{run.name}: adapter merged into the model (what an attacker of a released model starts from)")
    seeds = [
        relearn_seed(run, model_dir, settings, records, raw_records, folder, log_dir, seed, say)
        for seed in settings.seeds
    ]
    if not settings.keep_models:
        shutil.rmtree(folder / "merged", ignore_errors=True)
    return {
        "format": RELEARN_FORMAT,
        "run": {
            "name": run.name,
            "model": model_location(run.model),
            "adapter": None if run.adapter is None else model_location(run.adapter),
        },
        "settings": settings.as_dict(),
        "seeds": seeds,
        "curve": aggregate([seed["points"] for seed in seeds]),
        "duration_s": round(time.time() - started, 1),
    }


def relearn_seed(
    run: RunSpec,
    model_dir: str | Path,
    settings: RelearnSettings,
    records: Sequence[SafeEraserRecord],
    raw_records: Sequence[Any],
    folder: Path,
    log_dir: Path,
    seed: int,
    say: Progress,
) -> dict[str, Any]:
    seed_dir = folder / f"seed-{seed}"
    split = split_records(records, settings.relearn_share, seed)
    by_index = {record.index: record for record in records}
    scored_file = seed_dir / "data" / "all_train.json"
    write_json_atomic(scored_file, [relocated(raw_records[i], by_index[i], scored_file.parent) for i in split.scored])
    rows = write_relearn_dataset([by_index[i] for i in split.relearn], seed_dir / "dataset")
    train_dir = seed_dir / "train"
    if settings.max_steps:
        config = relearn_config(Path(model_dir), seed_dir / "dataset", train_dir, settings, seed)
        log_file = log_dir / f"{run_folder_name(run.name)}-seed-{seed}.train.log"
        run_llamafactory_train(config, seed_dir / "relearn.yaml", log_file)
        say(f"{run.name}, seed {seed}: relearned {settings.max_steps} steps on {rows} rows (llamafactory-cli train)")
    evaluator = Evaluator(settings.eval_settings(scored_file, seed))
    points = []
    for steps in settings.steps:
        adapter = checkpoint(train_dir, steps) if steps else None
        result = evaluator.evaluate(RunSpec(f"step-{steps}", model_dir, adapter), seed_dir / "eval")
        summary = result.summary["summary"]
        points.append({"steps": steps, "summary": summary})
        asr = summary.get("asr_eff")
        say(f"{run.name}, seed {seed}, {steps} steps: ASR on the scored rest {'n/a' if asr is None else f'{asr:.1%}'}")
    if not settings.keep_models:
        for path in train_dir.glob("checkpoint-*"):
            shutil.rmtree(path)
        (train_dir / "adapter_model.safetensors").unlink(missing_ok=True)
    return {
        "seed": seed,
        "relearn_records": list(split.relearn),
        "scored_records": list(split.scored),
        "relearn_rows": rows,
        "points": points,
        "train_loss": training_losses(train_dir),
    }


def training_losses(train_dir: Path) -> list[list[float]]:
    """[step, loss] of every logged relearning step (empty without training)."""
    state = train_dir / "trainer_state.json"
    if not state.is_file():
        return []
    history = json.loads(state.read_text(encoding="utf-8")).get("log_history", [])
    return [[entry["step"], entry["loss"]] for entry in history if "loss" in entry]
