"""The keys of ``safeeraser eval``, ``specificity`` and ``report``, each declared once, and what they build.

``safeeraser eval CONFIG.yaml [key=value ...]`` reads :data:`EVAL_KEYS`: LLaMA-Factory's names where
LLaMA-Factory has the setting (``model_name_or_path``, ``adapter_name_or_path``, ``template``,
``image_max_pixels``, ``max_new_tokens``, ``output_dir``, ``run_name``, ``seed``), lm-eval metadata names for the
tasks' own settings (``data_dir``, ``harmful_samples``, the judge keys of :class:`JudgeConfig`). The older flag
form (``--model``, ``--adapter``, ``--data``, ``--out`` ...) sets the same keys. ``safeeraser eval-keys`` prints
the table of docs/evaluation.md from these declarations; ``safeeraser specificity`` shares the model and output
keys (:data:`SPECIFICITY_KEYS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.records import SD_IMAGE_QUESTIONS
from ..errors import SafeEraserError
from ..lmeval_task.documents import DATA_DIR_ENV_VAR, DEFAULT_HARMFUL_SAMPLES, DEFAULT_TEMPLATE
from ..lmeval_task.judges import JudgeConfig
from ..lmeval_task.judges.config import metadata_key
from .config_keys import ConfigKey
from .results import RunSpec
from .runner import EvalSettings
from .specificity import DEFAULT_TASKS, SpecificitySettings

_DEFAULTS = EvalSettings()


def _judge_keys() -> tuple[ConfigKey, ...]:
    """One key per JudgeConfig setting, named as lm-eval's metadata names it (``judge``, ``judge_model`` ...)."""
    types = {"str": str, "int": int, "float": float}
    keys = []
    for setting in dataclasses.fields(JudgeConfig):
        type_name = str(setting.type).split(" ")[0]  # annotations are strings here: "float", "str | None"
        keys.append(
            ConfigKey(
                metadata_key(setting.name),
                types[type_name],
                setting.default,
                setting.metadata["help"],
                minimum=setting.metadata.get("minimum"),
            )
        )
    return tuple(keys)


def _positive(name: str, default: int | None, help_text: str, flags: tuple[str, ...] = ()) -> ConfigKey:
    return ConfigKey(name, int, default, help_text, minimum=1, flags=flags)


EVAL_KEYS: tuple[ConfigKey, ...] = (
    # the model, as LLaMA-Factory names it
    ConfigKey(
        "model_name_or_path",
        str,
        None,
        "base model: a local folder (Hugging Face format) or a hub id",
        required=True,
        flags=("--model",),
    ),
    ConfigKey(
        "adapter_name_or_path",
        str,
        None,
        "one LoRA adapter folder, e.g. a LLaMA-Factory output_dir (none: the base model)",
        flags=("--adapter",),
    ),
    ConfigKey("template", str, DEFAULT_TEMPLATE, "LLaMA-Factory template the model was trained with"),
    _positive("image_max_pixels", None, "the training run's image_max_pixels (none: LLaMA-Factory's 768*768)"),
    _positive("image_min_pixels", None, "the training run's image_min_pixels (none: LLaMA-Factory's 32*32)"),
    # the data
    ConfigKey(
        "data_dir",
        str,
        None,
        f"folder holding all_train.json and all_val.json (none: env {DATA_DIR_ENV_VAR})",
        flags=("--data",),
    ),
    ConfigKey("train_file", str, None, "the forget set file instead of <data_dir>/all_train.json"),
    ConfigKey("val_file", str, None, "the held-out file instead of <data_dir>/all_val.json"),
    _positive("harmful_samples", DEFAULT_HARMFUL_SAMPLES, "responses sampled per harmful question"),
    ConfigKey(
        "sarr_question",
        str,
        _DEFAULTS.sarr_question,
        "what SARR asks about the SD image: the harmful question (the reference) or a record's sd_question",
        choices=SD_IMAGE_QUESTIONS,
    ),
    # generation and lm-eval
    _positive(
        "max_new_tokens", None, "new tokens per response (none: the tasks' 512, the reference's)", ("--max-gen-toks",)
    ),
    _positive("limit", None, "documents per category subtask, for quick runs (none: all)"),
    _positive("batch_size", _DEFAULTS.batch_size, "batch size of generation"),
    ConfigKey("seed", int, _DEFAULTS.seed, "seed of sampling and of lm-eval"),
    ConfigKey("device", str, None, "none: cuda when available, else cpu"),
    ConfigKey(
        "tasks",
        list,
        list(_DEFAULTS.tasks),
        "lm-eval tasks: safeeraser, or some of safeeraser_efficacy, _generality, _sarr, _utility",
    ),
    # the judge
    *_judge_keys(),
    # the output
    ConfigKey(
        "output_dir",
        str,
        None,
        "output folder, one folder per run: <output_dir>/<run_name>/ (results.json, samples.jsonl, specificity.json); "
        "report.md covers every run there",
        required=True,
        flags=("--out",),
    ),
    ConfigKey(
        "run_name",
        str,
        None,
        "the run's name in the report (none: the adapter's folder name, else the model's)",
        flags=("--name",),
    ),
)

_BY_NAME = {key.name: key for key in EVAL_KEYS}
SPECIFICITY_KEYS: tuple[ConfigKey, ...] = (
    *(_BY_NAME[name] for name in ("model_name_or_path", "adapter_name_or_path")),
    ConfigKey(
        "tasks",
        list,
        list(DEFAULT_TASKS),
        "lmms-eval tasks, one per benchmark; a copy reading local files may add a suffix (pope_local)",
    ),
    ConfigKey("include_path", str, None, "lmms-eval --include_path: a folder of task YAMLs (local copies)"),
    ConfigKey("lmms_model", str, "llava_hf", "lmms-eval's model class for the (merged) model"),
    _positive("limit", None, "documents per benchmark, for quick runs (none: all)"),
    _BY_NAME["batch_size"],
    _BY_NAME["device"],
    ConfigKey("grader_model", str, None, "MM-Vet and MMBench: the GPT grader (none: lmms-eval's gpt-4o-2024-11-20)"),
    ConfigKey(
        "grader_base_url",
        str,
        None,
        "the grader's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (none: OpenAI's); key from env "
        "SAFEERASER_JUDGE_API_KEY or OPENAI_API_KEY",
    ),
    *(_BY_NAME[name] for name in ("output_dir", "run_name")),
)

REPORT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("runs", list, None, "run folders written by `safeeraser eval`", required=True),
    ConfigKey(
        "output", str, None, "report path, e.g. report.md (the plot goes beside it)", required=True, flags=("--out",)
    ),
)


def run_spec(values: dict[str, Any]) -> RunSpec:
    """The run the model keys name; named after its adapter, else its model, unless run_name says."""
    adapter = values["adapter_name_or_path"]
    if adapter is not None and "," in adapter:
        raise SafeEraserError(f"key 'adapter_name_or_path': one adapter folder, got {adapter!r}")
    model = values["model_name_or_path"]
    return RunSpec(values["run_name"] or Path(adapter or model).name, model, adapter)


def specificity_job(values: dict[str, Any]) -> tuple[RunSpec, SpecificitySettings, Path]:
    settings = SpecificitySettings(
        tasks=tuple(values["tasks"]),
        include_path=values["include_path"],
        lmms_model=values["lmms_model"],
        limit=values["limit"],
        batch_size=values["batch_size"],
        device=values["device"],
        grader_model=values["grader_model"],
        grader_base_url=values["grader_base_url"],
    )
    return run_spec(values), settings, Path(values["output_dir"])


@dataclass(frozen=True)
class EvalJob:
    run: RunSpec
    settings: EvalSettings
    output_dir: Path


def eval_job(values: dict[str, Any]) -> EvalJob:
    """The run, settings and output folder that checked ``EVAL_KEYS`` values describe."""
    judge = JudgeConfig.from_metadata(
        {metadata_key(setting.name): values[metadata_key(setting.name)] for setting in dataclasses.fields(JudgeConfig)}
    )
    settings = EvalSettings(
        data_dir=values["data_dir"],
        train_file=values["train_file"],
        val_file=values["val_file"],
        judge=judge,
        harmful_samples=values["harmful_samples"],
        max_gen_toks=values["max_new_tokens"],
        limit=values["limit"],
        batch_size=values["batch_size"],
        template=values["template"],
        image_max_pixels=values["image_max_pixels"],
        image_min_pixels=values["image_min_pixels"],
        sarr_question=values["sarr_question"],
        seed=values["seed"],
        device=values["device"],
        tasks=tuple(values["tasks"]),
    )
    return EvalJob(run_spec(values), settings, Path(values["output_dir"]))
