"""Evaluate one or several runs with lm-eval as a library and write their results (see ``results``).

A run is a name, a base model folder and an optional LoRA adapter folder. lm-eval, the task
index and the data are loaded once; each run then only loads its model (``hf-multimodal``,
``max_images=1``, ``peft=`` for adapters) and generates. Per run, ``OUT/<name>/`` receives
``results.json`` (layout: :func:`summarize`) and ``samples.jsonl`` (one line per response);
``OUT/report.md`` and ``OUT/report.png`` compare every run found in ``OUT``. Files are
written atomically.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..fileio import write_json_atomic, write_text_atomic
from ..lmeval_task.documents import FILE_OF_TASK, TASK_DIR, TASK_KINDS, TaskOptions, load_records
from ..lmeval_task.judges import JudgeConfig, get_judge
from .report import write_report
from .results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    TASK_PREFIX,
    RunSpec,
    find_run_folders,
    model_location,
    run_folder_name,
    samples_jsonl,
    summarize,
)

logger = logging.getLogger(__name__)

# Warnings lm-eval prints on every run of our tasks although nothing is wrong: our tasks load their data
# through `custom_dataset`, hf-multimodal models are neither CausalLM nor Seq2SeqLM, and we pass the
# generation overrides on purpose. Silenced in our runner only; plain `lm-eval` shows them as usual.
EXPECTED_LM_EVAL_WARNINGS = {
    "lm_eval.api.task": "Custom kwargs can be passed to `--metadata`",
    "lm_eval.models.huggingface": "HF model type is neither marked as CausalLM or Seq2SeqLM",
    "lm_eval.evaluator": "generation_kwargs: ",
}


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def quiet_expected_lm_eval_warnings() -> None:
    """Drop the lm-eval warnings listed in EXPECTED_LM_EVAL_WARNINGS (idempotent)."""
    for name, fragment in EXPECTED_LM_EVAL_WARNINGS.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.fragment == fragment for f in target.filters):
            target.addFilter(_DropMessage(fragment))


@dataclass(frozen=True)
class EvalSettings:
    """What every run of one evaluation shares."""

    data_dir: str | Path | None = None
    train_file: str | Path | None = None
    val_file: str | Path | None = None
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    harmful_samples: int = 3
    max_gen_toks: int | None = None  # None: the tasks' 512 (the reference's)
    limit: int | None = None  # documents per category subtask (after harmful-sample repetition); quick runs
    batch_size: int = 1
    template: str = "llava"
    image_max_pixels: int | None = None  # the training run's LLaMA-Factory keys; None: its defaults
    image_min_pixels: int | None = None
    sarr_question: str = "harmful"  # SARR's question about the SD image: harmful (the reference) or sd_question
    seed: int = 233
    device: str | None = None  # default: cuda when available, else cpu
    tasks: tuple[str, ...] = ("safeeraser",)

    def __post_init__(self) -> None:
        for name in ("harmful_samples", "batch_size", "max_gen_toks", "limit", "image_max_pixels", "image_min_pixels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise SafeEraserError(f"{name} must be a positive integer, got {value!r}")

    def metadata(self) -> dict[str, Any]:
        """The lm-eval task metadata these settings amount to (what ``--metadata`` would carry)."""
        metadata: dict[str, Any] = {
            "harmful_samples": self.harmful_samples,
            "template": self.template,
            "sarr_question": self.sarr_question,
        }
        for key in ("data_dir", "train_file", "val_file"):
            if getattr(self, key) is not None:
                metadata[key] = str(Path(getattr(self, key)).expanduser().resolve())
        for key in ("image_max_pixels", "image_min_pixels"):
            if getattr(self, key) is not None:
                metadata[key] = getattr(self, key)
        metadata.update(judge_metadata(self.judge))
        return metadata

    def gen_kwargs(self) -> dict[str, Any] | None:
        return {"max_gen_toks": self.max_gen_toks} if self.max_gen_toks is not None else None


def judge_metadata(config: JudgeConfig) -> dict[str, Any]:
    """Inverse of :meth:`JudgeConfig.from_metadata`."""
    values = json.loads(config.to_json())
    metadata: dict[str, Any] = {"judge": values.pop("name"), "rule_asr_overlap": values.pop("asr_overlap")}
    metadata.update({f"judge_{key}": value for key, value in values.items() if value is not None})
    return metadata


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_location(value: str | Path, marker: str, what: str, run: str) -> None:
    path = Path(value).expanduser()
    if path.exists():
        if not (path / marker).is_file():
            raise SafeEraserError(f"{path}: run '{run}': not a {what} folder ({marker} missing)")
    elif not _HUB_ID.match(str(value)):
        raise SafeEraserError(f"{path}: run '{run}': {what} folder not found")


def check_runs(runs: Sequence[RunSpec]) -> None:
    """Fail early, one line each, on bad run definitions (before any model loads)."""
    if not runs:
        raise SafeEraserError("no runs to evaluate")
    folders = Counter(run_folder_name(run.name) for run in runs)
    duplicates = [name for name, count in folders.items() if count > 1]
    if duplicates:
        raise SafeEraserError(f"run names must be unique; repeated: {', '.join(duplicates)}")
    for run in runs:
        _check_location(run.model, "config.json", "model", run.name)
        if run.adapter is not None:
            _check_location(run.adapter, "adapter_config.json", "PEFT adapter", run.name)


def check_data(settings: EvalSettings) -> TaskOptions:
    """Validate the data files the selected tasks need; raises DataError naming file/record/field."""
    options = TaskOptions.from_metadata(settings.metadata())
    needed = {FILE_OF_TASK[kind] for kind in tasks_to_kinds(settings.tasks)}
    for which in sorted(needed):
        load_records(options.data_file(which))
    return options


def tasks_to_kinds(tasks: Sequence[str]) -> list[str]:
    kinds: list[str] = []
    for task in tasks:
        if task == "safeeraser":
            kinds += list(TASK_KINDS)
        elif task.startswith(TASK_PREFIX) and task[len(TASK_PREFIX) :] in TASK_KINDS:
            kinds.append(task[len(TASK_PREFIX) :])
        else:
            choices = "|".join(TASK_KINDS)
            raise SafeEraserError(f"unknown SafeEraser task '{task}'; use safeeraser or safeeraser_<{choices}>")
    return list(dict.fromkeys(kinds))


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

    def task_manager(self, run: RunSpec) -> Any:
        """lm-eval's task index for ``run``: the settings' metadata plus the run's model as ``tokenizer``,
        so that the prompts are written for the tokenizer that encodes them (documents.py)."""
        from lm_eval.tasks import TaskManager

        metadata = {**self.settings.metadata(), "tokenizer": model_location(run.model)}
        # Our tasks only: indexing lm-eval's own thousands of task files would cost every run seconds.
        return TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)

    def _device(self) -> str:
        if self.settings.device:
            return self.settings.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def load_model(self, run: RunSpec) -> Any:
        from lm_eval.api.registry import get_model

        model_args: dict[str, Any] = {"pretrained": model_location(run.model), "max_images": 1}
        if run.adapter is not None:
            model_args["peft"] = model_location(run.adapter)
        lm = get_model("hf-multimodal").create_from_arg_obj(
            model_args, {"batch_size": self.settings.batch_size, "device": self._device()}
        )
        one_bos_like_training(lm.processor)
        return lm

    def evaluate(self, run: RunSpec, out_dir: str | Path) -> RunResult:
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
                tasks=list(settings.tasks),
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
        if raw is None:  # only non-zero ranks get None; we run single-process
            raise RuntimeError("lm-eval returned no results")
        folder = Path(out_dir) / run_folder_name(run.name)
        judge_stats = {key: value - stats_before.get(key, 0) for key, value in judge.stats().items()}
        summary = summarize(run, raw, settings, self.options, judge_stats, duration_s=time.time() - started)
        write_json_atomic(folder / RESULTS_FILE, summary)
        write_text_atomic(folder / SAMPLES_FILE, samples_jsonl(raw))
        if judge.stopped is not None:  # the results so far are kept; the run is not a result
            failures = judge_stats.get("failed_requests", 0)
            raise SafeEraserError(
                f"{judge.stopped}; run '{run.name}' stopped ({failures} judge failures, kept in {folder})"
            )
        return RunResult(run, folder, summary)


def one_bos_like_training(processor: Any) -> None:
    """Make the processor lm-eval calls write one BOS at most, as the training prompts have (and no EOS).

    hf-multimodal calls the processor with the defaults and cannot pass ``add_special_tokens=False``. Where
    the tokenizer writes the BOS (LLaVA-1.5's ``<s>``), training has it too (``integration.prompts.missing_bos``).
    Where the processor writes one itself (MllamaProcessor prepends ``<|begin_of_text|>``) a tokenizer that
    also adds one (Llama 3's) would make two: its own is switched off.
    """
    tokenizer = processor.tokenizer
    if getattr(tokenizer, "add_eos_token", False):
        tokenizer.add_eos_token = False
    if leading_bos(processor) > 1 and hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False  # also rewrites a fast tokenizer's post-processor
    if leading_bos(processor) > 1:
        logger.warning("the model's processor writes two BOS tokens; lm-eval's prompts will differ from training's")


def leading_bos(processor: Any) -> int:
    """How many BOS tokens the processor writes before a text."""
    bos = processor.tokenizer.bos_token_id
    ids = processor(text=["A"])["input_ids"][0]
    count = 0
    while bos is not None and count < len(ids) and ids[count] == bos:
        count += 1
    return count


def evaluate_runs(
    runs: Sequence[RunSpec],
    settings: EvalSettings,
    out_dir: str | Path,
    report: bool = True,
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Evaluate ``runs`` one after another in this process; then write ``OUT/report.md`` (+ PNG).

    The report covers every run folder in ``out_dir``, so separate invocations into one folder
    compare in one report. Returns the results in the order of ``runs``.
    """
    check_runs(runs)
    from ..integration.template_match import check_template_fits_model  # imports LLaMA-Factory

    for run in runs:  # a template of another model family: refused before any model loads
        check_template_fits_model(settings.template, model_location(run.model))
    evaluator = Evaluator(settings)
    results = []
    for run in runs:
        result = evaluator.evaluate(run, out_dir)
        results.append(result)
        if progress is not None:
            progress(result)
    if report:
        write_report(find_run_folders(out_dir), Path(out_dir) / "report.md")
    return results
