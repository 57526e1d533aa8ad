"""LLaMA-Factory's training side as the plugin uses it.

- re-exports of the building blocks the `unlearn` stage is made of (model and tokenizer loading, the
  SFT trainer and collator, the reference-model helper, logging, loss plots);
- tokenization of a dataset into prompt and answer ids with LLaMA-Factory's loader, template and
  multimodal plugin (``load_prompt_answer_rows``), and of a single answer (``encode_answer``);
- installing a new stage: the parser's argument lists and ``tuner._training_function`` (``install_stage``),
  the callbacks LLaMA-Factory gives every stage (``stage_callbacks``), its process-group teardown.

No ``from __future__ import annotations`` here: HfArgumentParser reads real annotations.
"""

import copy
import dataclasses
import typing
from collections.abc import Callable
from types import ModuleType
from typing import Any

import llamafactory
import torch.distributed as dist
from llamafactory.data import get_template_and_fix_tokenizer as _get_template_and_fix_tokenizer
from llamafactory.data.collator import SFTDataCollatorWith4DAttentionMask
from llamafactory.data.loader import _get_merged_dataset
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.processor.supervised import SupervisedDatasetProcessor
from llamafactory.data.template import TEMPLATES
from llamafactory.extras.logging import get_logger as _get_llamafactory_logger
from llamafactory.extras.ploting import plot_loss
from llamafactory.hparams import FinetuningArguments
from llamafactory.hparams import parser as _parser
from llamafactory.model import load_model, load_tokenizer
from llamafactory.train.callbacks import (
    ModuleProfilerCallback,
    PissaConvertCallback,
    ReporterCallback,
    TorchProfilerCallback,
)
from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer
from llamafactory.train.trainer_utils import create_modelcard_and_push, create_ref_model, get_swanlab_callback
from transformers import EarlyStoppingCallback

from .. import SUPPORTED_LLAMAFACTORY
from .contract import INTERNALS, problems
from .template_text import missing_bos
from .trainer_log import LossTermsLogCallback

__all__ = [
    "ROW_COLUMNS",
    "CustomSeq2SeqTrainer",
    "FinetuningArguments",
    "LossTermsLogCallback",
    "RunArguments",
    "SFTDataCollatorWith4DAttentionMask",
    "UnsupportedLlamaFactory",
    "create_modelcard_and_push",
    "create_ref_model",
    "dataset_files",
    "dpo_beta",
    "encode_answer",
    "end_of_turn_ids",
    "get_logger",
    "get_template_and_fix_tokenizer",
    "get_train_args",
    "import_tuner",
    "install_stage",
    "load_model",
    "load_prompt_answer_rows",
    "load_tokenizer",
    "original_training_function",
    "plot_loss",
    "requested_stage",
    "run_arguments",
    "stage_callbacks",
    "stage_type_with",
    "teardown_process_group",
]


def get_logger(name: str) -> Any:
    """A logger under LLaMA-Factory's root logger, so our lines share its handler, format and level."""
    return _get_llamafactory_logger(f"llamafactory.{name}")


logger = get_logger(__name__)


def get_template_and_fix_tokenizer(tokenizer: Any, data_args: Any) -> Any:
    """LLaMA-Factory's template of a run, the tokenizer fixed as it fixes it, without its side effect on the
    registry: it writes a run's ``default_system`` (and ``tool_format``) into the registered Template itself,
    which prompts rendered later in the same process (lm-eval documents, respond) would then read."""
    name = data_args.template
    registered = TEMPLATES.get(name) if name else None
    if registered is None:
        return _get_template_and_fix_tokenizer(tokenizer, data_args)
    TEMPLATES[name] = copy.copy(registered)  # the run's own copy is the one LLaMA-Factory changes and returns
    try:
        return _get_template_and_fix_tokenizer(tokenizer, data_args)
    finally:
        TEMPLATES[name] = registered


# ----- installing a stage ------------------------------------------------------------------------------
# the parser's argument lists, as the contract table names them (_TRAIN_ARGS, _INFER_ARGS, ...)
_ARG_LISTS = tuple(
    row.symbol.removeprefix(f"{_parser.__name__}.") for row in INTERNALS if row.expected == "arguments list"
)
_ORIGINAL_FLAG = "__safeeraser_original__"


class UnsupportedLlamaFactory(ImportError):
    """The installed LLaMA-Factory lacks what ``install_stage`` patches."""


def stage_type_with(stage: str) -> Any:
    """FinetuningArguments' ``stage`` annotation (a Literal of the stage names) plus ``stage``."""
    choices = typing.get_args(FinetuningArguments.__dataclass_fields__["stage"].type)
    return typing.Literal[(*choices, stage)]  # type: ignore[valid-type]


def install_stage(tuner: ModuleType, stage: str, arguments_class: type, run_stage: Callable[[dict], None]) -> None:
    """Teach an imported ``llamafactory.train.tuner`` a new stage (idempotent).

    ``arguments_class`` (a FinetuningArguments subclass that accepts ``stage``) replaces FinetuningArguments
    in the parser's argument lists, so its keys parse and show in ``llamafactory-cli train -h``; the tuner's
    ``_training_function`` sends ``stage`` to ``run_stage`` and every other stage to the original, untouched.
    Raises UnsupportedLlamaFactory, before changing anything, when the installed LLaMA-Factory does not match
    the stage's rows of the contract table (``contract.INTERNALS``).
    """
    found = problems(["stage"])  # the stage's rows of the contract table
    original: Callable[[dict], None] | None = getattr(tuner, "_training_function", None)
    if original is None and not found:
        found.append("llamafactory.train.tuner._training_function is missing")
    if found:
        raise UnsupportedLlamaFactory(
            f"llamafactory-safeeraser cannot add `stage: {stage}` to LLaMA-Factory "
            f"{llamafactory.__version__}: {'; '.join(found)}. Supported: "
            f"llamafactory{SUPPORTED_LLAMAFACTORY}. Install a supported version, or set SAFEERASER_DISABLE=1 "
            "to run LLaMA-Factory without the plugin."
        )
    for list_name in _ARG_LISTS:
        arg_list = getattr(_parser, list_name, [])
        for i, cls in enumerate(arg_list):
            if cls is FinetuningArguments:
                arg_list[i] = arguments_class
    if getattr(original, _ORIGINAL_FLAG, None) is not None:
        return

    def _training_function(config: dict) -> None:
        if requested_stage(config.get("args")) == stage:
            run_stage(config)
        else:
            original(config)

    setattr(_training_function, _ORIGINAL_FLAG, original)
    tuner._training_function = _training_function


def original_training_function(tuner: ModuleType) -> Callable[[dict], None]:
    """The tuner's ``_training_function`` as LLaMA-Factory wrote it (the one ``install_stage`` wrapped)."""
    function = tuner._training_function
    return getattr(function, _ORIGINAL_FLAG, None) or function


def requested_stage(args: Any = None) -> str | None:
    """The `stage` of raw train arguments (a YAML/JSON dict or a command-line list); by default, of this
    process's command line as LLaMA-Factory reads it."""
    if args is None:
        try:
            args = _parser.read_args()
        except Exception:  # not a LLaMA-Factory command line
            return None
    if isinstance(args, dict):
        return args.get("stage")
    if isinstance(args, (list, tuple)):
        for i, item in enumerate(args):
            if item == "--stage" and i + 1 < len(args):
                return args[i + 1]
            if isinstance(item, str) and item.startswith("--stage="):
                return item.split("=", 1)[1]
    return None


def import_tuner() -> ModuleType:
    """``llamafactory.train.tuner``; importing it runs the start-up hook's install."""
    from llamafactory.train import tuner

    return tuner


def get_train_args(args: Any = None) -> tuple:
    """LLaMA-Factory's own train-argument parsing and checks: (model, data, training, finetuning, generating)."""
    return _parser.get_train_args(args)


def stage_callbacks(
    model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any, generating_args: Any, callbacks: list
) -> list:
    """The callbacks LLaMA-Factory's ``_training_function`` gives every stage, appended to ``callbacks``.

    LLaMA-Factory builds them inline in that function, so they are mirrored here, statement for statement:
    the contract test compares the two lists as read from the source (``contract.appended_callbacks``). Its
    LogCallback becomes ``LossTermsLogCallback``, which also writes the loss terms the trainer names to
    trainer_log.jsonl (LlamaBoard draws them).
    """
    callbacks.append(LossTermsLogCallback())
    if finetuning_args.pissa_convert:
        callbacks.append(PissaConvertCallback())
    if finetuning_args.use_swanlab:
        callbacks.append(get_swanlab_callback(finetuning_args))
    if finetuning_args.early_stopping_steps is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=finetuning_args.early_stopping_steps))
    if getattr(training_args, "enable_torch_profiler", False):
        callbacks.append(TorchProfilerCallback(training_args))
    if getattr(training_args, "profile_modules", None):
        callbacks.append(ModuleProfilerCallback(training_args.profile_modules))
    callbacks.append(ReporterCallback(model_args, data_args, finetuning_args, generating_args))  # last, as there
    return callbacks


@dataclasses.dataclass(frozen=True)
class RunArguments:
    """What the `unlearn` stage reads of LLaMA-Factory's own parsed arguments, under names of ours: the
    LLaMA-Factory field names are read here and nowhere else (``run_arguments``)."""

    model: str  # model_args.model_name_or_path
    template: str | None  # data_args.template
    do_train: bool
    streaming_packing_or_tokenized: bool  # data_args.streaming / packing / tokenized_path
    train_on_prompt: bool
    persistent_workers: bool  # training_args.dataloader_persistent_workers
    eval_split: bool  # data_args.val_size / eval_dataset
    lora: bool  # finetuning_type: lora
    ref_model: str | None  # finetuning_args.ref_model: an explicit reference model
    continues_adapter: bool  # adapter_name_or_path set and no create_new_adapter
    last_adapter: str | None  # the last of adapter_name_or_path: the one training continues
    forget_datasets: list[str]  # data_args.dataset
    cutoff_len: int
    seed: int
    compute_dtype: Any
    resume_from_checkpoint: str | None
    output_dir: str
    plot_loss: bool


def run_arguments(model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any) -> RunArguments:
    return RunArguments(
        model=model_args.model_name_or_path,
        template=data_args.template,
        do_train=bool(training_args.do_train),
        streaming_packing_or_tokenized=bool(data_args.streaming or data_args.packing or data_args.tokenized_path),
        train_on_prompt=bool(data_args.train_on_prompt),
        persistent_workers=bool(training_args.dataloader_persistent_workers),
        eval_split=bool(data_args.val_size or data_args.eval_dataset),
        lora=finetuning_args.finetuning_type == "lora",
        ref_model=finetuning_args.ref_model,
        continues_adapter=bool(model_args.adapter_name_or_path) and not finetuning_args.create_new_adapter,
        last_adapter=model_args.adapter_name_or_path[-1] if model_args.adapter_name_or_path else None,
        forget_datasets=data_args.dataset,
        cutoff_len=data_args.cutoff_len,
        seed=training_args.seed,
        compute_dtype=model_args.compute_dtype,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
        output_dir=training_args.output_dir,
        plot_loss=bool(finetuning_args.plot_loss),
    )


def dpo_beta(finetuning_args: Any) -> float:
    """LLaMA-Factory's own DPO key ``pref_beta`` (IdkDPO's beta)."""
    return finetuning_args.pref_beta


def teardown_process_group() -> None:
    """LLaMA-Factory's end of a stage: destroy the process group, tolerating a failed teardown."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as err:  # as LLaMA-Factory: a failed teardown must not fail a finished run
            logger.warning(f"Failed to destroy process group: {err}.")


# ----- datasets -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _PromptAnswerProcessor(SupervisedDatasetProcessor):
    """LLaMA-Factory's SFT tokenization (template, image-token expansion), kept as prompt and answer ids.

    One addition: the prompt starts with the tokenizer's BOS where the tokenizer writes one and the template
    does not (LLaVA-1.5's ``<s>``; see ``prompts.missing_bos``). Nothing is truncated or dropped here: rows
    are assembled per step (``unlearn.rows``), and a row that cannot be encoded keeps its place with a
    ``problem`` so that the loader can name it.
    """

    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
        for i in range(len(examples["_prompt"])):
            media = {kind: examples[f"_{kind}"][i] or [] for kind in ("images", "videos", "audios")}
            prompt_ids: list[int] = []
            answer_ids: list[int] = []
            problem = ""
            if len(examples["_prompt"][i]) != 1 or len(examples["_response"][i]) != 1:
                problem = "expected one user turn and one answer"
            else:
                try:
                    prompt_ids, answer_ids = self._encode_prompt_answer(
                        examples["_prompt"][i] + examples["_response"][i], examples["_system"][i], media
                    )
                except ValueError as err:  # e.g. the number of images and <image> tags differ
                    problem = str(err).splitlines()[0]
            columns["prompt_ids"].append(prompt_ids)
            columns["answer_ids"].append(answer_ids)
            columns["problem"].append(problem)
            for kind, items in media.items():
                columns[kind].append(items)
        return columns

    def _encode_prompt_answer(self, messages: list[dict], system: str | None, media: dict) -> tuple[list, list]:
        plugin = self.template.mm_plugin
        images, videos, audios = media["images"], media["videos"], media["audios"]
        messages = plugin.process_messages(messages, images, videos, audios, self.processor)
        prefix_ids, _ = plugin.process_token_ids([], [], images, videos, audios, self.tokenizer, self.processor)
        ((source_ids, target_ids),) = self.template.encode_multiturn(self.tokenizer, messages, system, None)
        if self.template.efficient_eos:
            target_ids = [*target_ids, self.tokenizer.eos_token_id]
        prompt_ids = prefix_ids + source_ids
        return missing_bos(self.tokenizer, prompt_ids) + prompt_ids, target_ids


# Columns of a tokenized unlearning set: see `_PromptAnswerProcessor`.
ROW_COLUMNS = ("prompt_ids", "answer_ids", "problem", "images", "videos", "audios")


def load_prompt_answer_rows(
    names: list[str],
    template: Any,
    model_args: Any,
    data_args: Any,
    training_args: Any,
    tokenizer: Any,
    processor: Any = None,
) -> Any:
    """Load datasets by name from ``dataset_info.json`` and tokenize them into prompt and answer ids.

    LLaMA-Factory's own loader aligns the rows (alpaca/sharegpt columns, images, ``max_samples``); its
    template and multimodal plugin tokenize them, as in its SFT stage.
    """
    with training_args.main_process_first(desc="load dataset", local=not data_args.data_shared_file_system):
        aligned = _get_merged_dataset(names, model_args, data_args, training_args, stage="sft")
        row_processor = _PromptAnswerProcessor(
            template=template, tokenizer=tokenizer, processor=processor, data_args=data_args
        )
        return aligned.map(
            row_processor.preprocess_dataset,
            batched=True,
            batch_size=data_args.preprocessing_batch_size,
            remove_columns=list(aligned.column_names),
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=(not data_args.overwrite_cache) or (training_args.local_process_index != 0),
            desc="Tokenizing prompts and answers",
        )


def dataset_files(names: list[str], data_args: Any) -> list[str]:
    """The file (or hub id) behind each dataset name, for error messages."""
    return [attr.dataset_name for attr in get_dataset_list(names, data_args.dataset_dir)]


def encode_answer(template: Any, tokenizer: Any, text: str) -> list[int]:
    """An answer's token ids as the template writes an assistant turn (its end-of-turn tokens included)."""
    _, answer_ids = template.encode_oneturn(
        tokenizer, [{"role": "user", "content": ""}, {"role": "assistant", "content": text}]
    )
    if template.efficient_eos:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
    return answer_ids


def end_of_turn_ids(template: Any, tokenizer: Any) -> frozenset[int]:
    """The tokens that end an answer in this template (EOS and its stop words)."""
    return frozenset(template.get_stop_token_ids(tokenizer))
