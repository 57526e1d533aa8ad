"""Evaluate one or several runs with lm-eval as a library and write their results (see ``results``).

A run is a name, a base model folder and an optional LoRA adapter folder. lm-eval, the task
index and the data are loaded once; each run then only loads its model (``hf-multimodal``, or ``vllm-vlm``
with ``backend=vllm``: see ``backends``) and generates. Per run, ``OUT/<name>/`` receives
``results.json`` (layout: :func:`summarize`) and ``samples.jsonl`` (one line per response);
``OUT/report.md`` and ``OUT/report.png`` compare every run found in ``OUT``. Files are
written atomically.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..devices import default_device
from ..errors import SafeEraserError
from ..fileio import write_json_atomic, write_text_atomic
from ..integration.quantization import check_installed as check_quantization_installed
from ..lmeval_task.documents import FILE_OF_TASK, TASK_DIR, TaskOptions, load_records
from ..lmeval_task.judges import get_judge
from .backends import check_backend, full_modules, lm_eval_model
from .lmeval_logging import quiet_expected_lm_eval_warnings
from .lmeval_output import order_samples, tasks_to_kinds, tasks_to_run
from .merge import merge_adapter, quantized_model
from .parallel import launch, merge_judge_outcome
from .processor_bos import check_vllm_bos, one_bos_like_training
from .report import write_report
from .results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    RunSpec,
    find_run_folders,
    load_run_results,
    model_location,
    run_folder_name,
    samples_jsonl,
    summarize,
    with_quantized,
)
from .run_checks import check_not_finished, check_runs, check_runs_served
from .settings import EvalSettings


def check_data(settings: EvalSettings) -> TaskOptions:
    """Validate the data files the selected tasks need; raises DataError naming file/record/field."""
    options = TaskOptions.from_metadata(settings.metadata())
    needed = {FILE_OF_TASK[kind] for kind in tasks_to_kinds((*settings.tasks, *(settings.quantized_tasks or ())))}
    for which in sorted(needed):
        load_records(options.data_file(which))
    return options


@dataclass
class RunResult:
    run: RunSpec
    folder: Path
    summary: dict[str, Any]


class Evaluator:
    """lm-eval loaded once; :meth:`evaluate` runs one model at a time."""

    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.options = check_data(settings)  # bad data fails here, before lm-eval is even imported
        check_backend(settings)
        if settings.quantization_bits:
            check_quantization_installed()

    def task_manager(self, run: RunSpec) -> Any:
        """lm-eval's task index for ``run``: the settings' metadata plus the run's model as ``tokenizer``,
        so that the prompts are written for the tokenizer that encodes them (documents.py)."""
        from lm_eval.tasks import TaskManager

        metadata = {**self.settings.metadata(), "tokenizer": model_location(run.model)}
        # Our tasks only: indexing lm-eval's own thousands of task files would cost every run seconds.
        return TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)

    def _device(self) -> str:
        return default_device(self.settings.device)

    def load_model(self, run: RunSpec) -> Any:
        from lm_eval.api.registry import get_model

        settings = self.settings
        if settings.backend == "vllm":
            return self.load_vllm_model(run)
        # a quantized run's adapter is merged into the model it loads, so lm-eval gets none
        as_loaded = run if run.quantization_bit is None else RunSpec(run.name, run.model)
        chosen = lm_eval_model("hf", as_loaded, settings.batch_size, self._device(), settings.seed)
        name, model_args = chosen.name, dict(chosen.model_args)
        if settings.document_seeds:
            from ..lmeval_task.seeded_hf import MODEL_NAME  # registers the model

            # hf-multimodal with per-document sampling seeds: responses do not depend on batching or processes
            name, model_args["seed"] = MODEL_NAME, settings.seed
        with ExitStack() as stack:
            if run.quantization_bit is not None:  # hf-multimodal takes the loaded model in place of its folder
                model_args["pretrained"] = stack.enter_context(quantized_model(run, self._device()))
            lm = get_model(name).create_from_arg_obj(model_args, chosen.batch_args)
        one_bos_like_training(lm.processor)
        return lm

    def load_vllm_model(self, run: RunSpec) -> Any:
        """lm-eval's vllm-vlm for ``run``. vLLM applies an adapter's LoRA layers only: one with fully trained
        modules (LLaMA-Factory's ``additional_target``, the paper recipes' projector) is merged into the base
        first, in a temporary folder (``TMPDIR``) that only lives while the engine loads it."""
        from lm_eval.api.registry import get_model

        settings = self.settings
        with tempfile.TemporaryDirectory(prefix="safeeraser-vllm-merged-") as scratch:
            if run.adapter is not None and full_modules(run.adapter):
                merged = merge_adapter(run.model, run.adapter, Path(scratch))
                run = RunSpec(run.name, str(merged), None)
            chosen = lm_eval_model("vllm", run, settings.batch_size, "cuda", settings.seed)
            lm = get_model(chosen.name).create_from_arg_obj(chosen.model_args, chosen.batch_args)
        check_vllm_bos(lm.processor)  # vLLM's engine encodes with the processor as released
        return lm

    def evaluate(self, run: RunSpec, out_dir: str | Path) -> RunResult:
        """Evaluate one run into ``out_dir/<name>/``, replacing its files (each atomically). The caller owns the
        folder: :func:`evaluate_runs` refuses a finished one first; relearn and the demo write their own."""
        result = self.evaluate_share(run, out_dir)
        if result is None:  # only non-zero ranks of a parallel job get None
            raise RuntimeError("lm-eval returned no results")
        return result

    def evaluate_share(self, run: RunSpec, out_dir: str | Path) -> RunResult | None:
        """:meth:`evaluate` in one process of a data-parallel job (``parallel``): this process generates its share
        of the documents; rank 0 writes the run's files and returns its result, the other ranks None."""
        from lm_eval import simple_evaluate

        quiet_expected_lm_eval_warnings()
        settings = self.settings
        started = time.time()
        judge = get_judge(self.options.judge)  # the instance the tasks use: same config, same object
        judge.check_health()  # a dead endpoint fails here, before the model generates anything
        stats_before = judge.stats()
        lm = self.load_model(run)
        # lm-eval's hf-multimodal runs gc.collect() after every batch; with the process's long-lived objects
        # (torch, LLaMA-Factory, the loaded model) frozen, each collection scans only this run's new objects
        # (measured on CPU: 0.37 s -> ~0.01 s per batch; see docs/performance.md). Unfrozen before the final collect.
        gc.freeze()
        try:
            raw = simple_evaluate(
                model=lm,
                tasks=tasks_to_run(settings.tasks_of(run.quantization_bit), self.options.judge.name),
                task_manager=self.task_manager(run),
                limit=settings.limit,
                gen_kwargs=settings.gen_kwargs(),
                log_samples=True,
                # lm-eval's default; our rates aggregate with its `mean`, whose standard error is closed-form
                # (no resampling happens)
                bootstrap_iters=100000,
                random_seed=settings.seed,
                numpy_random_seed=settings.seed,
                torch_random_seed=settings.seed,
                fewshot_random_seed=settings.seed,
            )
        finally:
            gc.unfreeze()
            del lm
            gc.collect()
        judge_stats = {key: value - stats_before.get(key, 0) for key, value in judge.stats().items()}
        judge_stats, stopped = merge_judge_outcome(judge_stats, judge.stopped)  # over the processes of a job
        if raw is None:  # a non-zero rank of a parallel job: rank 0 has every sample
            if stopped is not None:
                raise SafeEraserError(f"{stopped}; run '{run.name}' stopped")
            return None
        order_samples(raw)
        folder = Path(out_dir) / run_folder_name(run.name)
        summary = summarize(run, raw, settings, self.options, judge_stats, duration_s=time.time() - started)
        write_json_atomic(folder / RESULTS_FILE, summary)
        write_text_atomic(folder / SAMPLES_FILE, samples_jsonl(raw))
        if stopped is not None:  # the results so far are kept; the run is not a result
            failures = judge_stats.get("failed_requests", 0)
            raise SafeEraserError(f"{stopped}; run '{run.name}' stopped ({failures} judge failures, kept in {folder})")
        return RunResult(run, folder, summary)


def evaluate_runs(
    runs: Sequence[RunSpec],
    settings: EvalSettings,
    out_dir: str | Path,
    report: bool = True,
    progress: Callable[[RunResult], None] | None = None,
    overwrite: bool = False,
    num_processes: int = 1,
) -> list[RunResult]:
    """Evaluate ``runs`` one after another, in this process or each over ``num_processes`` data-parallel
    processes (``parallel``: the same files); then write ``OUT/report.md`` (+ PNG).

    A run whose folder ``OUT/<name>/`` already holds a results.json is refused before any model loads, unless
    ``overwrite`` (then its files are replaced, each atomically). The report covers every run folder in
    ``out_dir``, so separate invocations into one folder compare in one report. With ``quantization_bits``, each
    run is followed by its quantized runs (``<name>@int<bits>``, :func:`results.with_quantized`). Returns the
    results in that order.
    """
    if settings.quantization_bits and num_processes > 1:
        # hf-multimodal handed a loaded model runs it in one process (it sets up no data parallelism then)
        raise SafeEraserError(f"key 'quantization_bits': quantized runs need num_processes=1, got {num_processes}")
    runs = with_quantized(runs, settings.quantization_bits)
    check_runs(runs)
    if not overwrite:
        check_not_finished(runs, out_dir)
    check_runs_served(runs, settings.template)
    results = []
    for result in _run_results(runs, settings, out_dir, num_processes):
        results.append(result)
        if progress is not None:
            progress(result)
    if report:
        write_report(find_run_folders(out_dir), Path(out_dir) / "report.md")
    return results


def _run_results(
    runs: Sequence[RunSpec], settings: EvalSettings, out_dir: str | Path, num_processes: int
) -> Iterator[RunResult]:
    """Each run's result as it finishes: evaluated here, or by a data-parallel job (read back from its files)."""
    if num_processes == 1:
        evaluator = Evaluator(settings)
        for run in runs:
            yield evaluator.evaluate(run, out_dir)
        return
    check_data(settings)  # bad data fails in one line before any process starts
    for run in runs:
        (folder,) = launch([run], settings, out_dir, num_processes)
        yield RunResult(run, folder, load_run_results(folder))
