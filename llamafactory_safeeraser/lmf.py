"""The one module that touches LLaMA-Factory internals.

Everything else in the package imports LLaMA-Factory names from here, so a LLaMA-Factory
upgrade should need changes in this file only. What it does:

1. ``patch_llamafactory`` (run by the start-up hook right after ``llamafactory.train.tuner`` is
   imported) swaps the ``FinetuningArguments`` class in the parser's argument lists for a
   subclass that accepts ``stage: unlearn`` and our keys (so they also show in
   ``llamafactory-cli train -h``), and wraps ``tuner._training_function`` so that ``unlearn``
   runs our workflow while every other stage reaches the original, untouched.
2. Re-exports the LLaMA-Factory building blocks the workflow uses, plus helpers built on private
   loader functions and template/plugin internals (load one SFT dataset by name; render a
   template's prompt with its image placeholders as lm-eval needs them).

No ``from __future__ import annotations`` here: HfArgumentParser reads the real annotations.
"""

import copy
import dataclasses
import typing
from collections.abc import Callable
from importlib.metadata import version as _installed_version
from types import ModuleType, SimpleNamespace
from typing import Any

import torch.distributed as dist
from llamafactory.data import get_template_and_fix_tokenizer
from llamafactory.data.collator import SFTDataCollatorWith4DAttentionMask
from llamafactory.data.loader import _get_merged_dataset
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.processor.supervised import SupervisedDatasetProcessor
from llamafactory.data.template import TEMPLATES
from llamafactory.extras.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER
from llamafactory.extras.logging import get_logger as _get_llamafactory_logger
from llamafactory.extras.ploting import plot_loss
from llamafactory.hparams import FinetuningArguments, ModelArguments
from llamafactory.hparams import parser as _parser
from llamafactory.model import load_model, load_tokenizer
from llamafactory.train.callbacks import (
    LogCallback,
    ModuleProfilerCallback,
    PissaConvertCallback,
    ReporterCallback,
    TorchProfilerCallback,
)
from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer
from llamafactory.train.trainer_utils import create_modelcard_and_push, create_ref_model, get_swanlab_callback
from transformers import EarlyStoppingCallback

from . import SUPPORTED_LLAMAFACTORY
from .unlearn.arguments import UnlearningArguments
from .unlearn.rows import answer_content_length

__all__ = [
    "IGNORE_INDEX",
    "CustomSeq2SeqTrainer",
    "SFTDataCollatorWith4DAttentionMask",
    "create_modelcard_and_push",
    "create_ref_model",
    "dataset_files",
    "encode_answer",
    "get_logger",
    "get_template_and_fix_tokenizer",
    "image_placeholder_text",
    "load_model",
    "load_prompt_answer_rows",
    "load_tokenizer",
    "parse_train_args",
    "patch_llamafactory",
    "plot_loss",
    "render_user_prompt",
    "training_image",
]

UNLEARN_STAGE = "unlearn"


def get_logger(name: str) -> Any:
    """A logger under LLaMA-Factory's root logger, so our lines share its handler, format and level."""
    return _get_llamafactory_logger(f"llamafactory.{name}")


logger = get_logger(__name__)


_ARG_LISTS = ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS", "_TRAIN_MCA_ARGS")
_ORIGINAL_FLAG = "__safeeraser_original__"

_stage_choices = typing.get_args(FinetuningArguments.__dataclass_fields__["stage"].type)
StageType = typing.Literal[(*_stage_choices, UNLEARN_STAGE)]  # type: ignore[valid-type]


@dataclasses.dataclass
class SafeEraserFinetuningArguments(FinetuningArguments, UnlearningArguments):
    """LLaMA-Factory's FinetuningArguments plus the unlearning keys and the `unlearn` stage."""

    stage: StageType = dataclasses.field(
        default="sft",
        metadata={"help": "Which stage will be performed in training (`unlearn`: SafeEraser unlearning)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_unlearning_arguments(self.stage)


def _fail_unsupported(missing: str) -> None:
    raise ImportError(
        f"llamafactory-safeeraser cannot patch LLaMA-Factory {_installed_version('llamafactory')}: "
        f"{missing} is missing. Supported: llamafactory{SUPPORTED_LLAMAFACTORY}. "
        "Install a supported version, or set SAFEERASER_DISABLE=1 to run LLaMA-Factory without the plugin."
    )


def _requested_stage(args: Any) -> str | None:
    """The `stage` of raw train arguments (a YAML/JSON dict or a command-line list)."""
    if isinstance(args, dict):
        return args.get("stage")
    if isinstance(args, (list, tuple)):
        for i, item in enumerate(args):
            if item == "--stage" and i + 1 < len(args):
                return args[i + 1]
            if isinstance(item, str) and item.startswith("--stage="):
                return item.split("=", 1)[1]
    return None


def _run_unlearn_stage(config: dict) -> None:
    """The `unlearn` branch of LLaMA-Factory's `_training_function` (0.9.5): the same callbacks and teardown.

    LLaMA-Factory builds its callbacks inline in that function, so they are mirrored here; keep this in step
    with `llamafactory/train/tuner.py` on an upgrade.
    """
    from .unlearn.workflow import run_unlearn

    model_args, data_args, training_args, finetuning_args, generating_args = _parser.get_train_args(config.get("args"))
    callbacks: list = config.get("callbacks") or []
    callbacks.append(LogCallback())
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
    run_unlearn(model_args, data_args, training_args, finetuning_args, callbacks)
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as err:  # as LLaMA-Factory: a failed teardown must not fail a finished run
            logger.warning(f"Failed to destroy process group: {err}.")


def patch_llamafactory(tuner: ModuleType) -> None:
    """Teach an imported ``llamafactory.train.tuner`` the `unlearn` stage (idempotent)."""
    for list_name in _ARG_LISTS:
        if not hasattr(_parser, list_name):
            if list_name == "_TRAIN_MCA_ARGS":
                continue
            _fail_unsupported(f"llamafactory.hparams.parser.{list_name}")
        arg_list = getattr(_parser, list_name)
        for i, cls in enumerate(arg_list):
            if cls is FinetuningArguments:
                arg_list[i] = SafeEraserFinetuningArguments

    original: Callable[[dict], None] | None = getattr(tuner, "_training_function", None)
    if original is None:
        _fail_unsupported("llamafactory.train.tuner._training_function")
    if getattr(original, _ORIGINAL_FLAG, None) is not None:
        return

    def _training_function(config: dict) -> None:
        if _requested_stage(config.get("args")) == UNLEARN_STAGE:
            _run_unlearn_stage(config)
        else:
            original(config)

    setattr(_training_function, _ORIGINAL_FLAG, original)
    tuner._training_function = _training_function


def parse_train_args(config: dict) -> tuple:
    """LLaMA-Factory's own train-argument parsing and checks, with the plugin's patch applied."""
    from llamafactory.train import tuner

    patch_llamafactory(tuner)
    return _parser.get_train_args(config)


@dataclasses.dataclass
class _PromptAnswerProcessor(SupervisedDatasetProcessor):
    """LLaMA-Factory's SFT tokenization (template, image-token expansion), kept as prompt and answer ids.

    Nothing is truncated or dropped here: rows are assembled per step (``unlearn.rows``), and a row that
    cannot be encoded keeps its place with a ``problem`` so that the loader can name it.
    """

    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
        end_of_turn = set(self.template.get_stop_token_ids(self.tokenizer))
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
            columns["answer_content_length"].append(answer_content_length(answer_ids, end_of_turn))
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
        return prefix_ids + source_ids, target_ids


# Columns of a tokenized unlearning set: see `_PromptAnswerProcessor`.
ROW_COLUMNS = ("prompt_ids", "answer_ids", "answer_content_length", "problem", "images", "videos", "audios")


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


def encode_answer(template: Any, tokenizer: Any, text: str) -> tuple[list[int], int]:
    """An answer's token ids as the template writes an assistant turn, and how many of them are its words."""
    _, answer_ids = template.encode_oneturn(
        tokenizer, [{"role": "user", "content": ""}, {"role": "assistant", "content": text}]
    )
    if template.efficient_eos:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
    return answer_ids, answer_content_length(answer_ids, set(template.get_stop_token_ids(tokenizer)))


# What a plugin may read from the processor while not expanding image tokens (Qwen2-VL: the merge size);
# never the image itself. It lets a prompt be rendered without loading a model.
_UNEXPANDED_PROCESSOR = SimpleNamespace(image_processor=SimpleNamespace(merge_size=1))


def image_placeholder_text(template_name: str, user_content: str) -> str:
    """``user_content`` as the template's multimodal plugin writes it, each image still one ``<image>``.

    The plugin runs with ``expand_mm_tokens`` off, as in LLaMA-Factory's own vLLM and SGLang engines,
    where the engine's processor expands the image token. What the plugin wraps around the token stays
    (``qwen2_vl``: ``<|vision_start|><image><|vision_end|>``); the token itself is written back as
    ``<image>``, the placeholder lm-eval's hf-multimodal swaps for the model's own image token before the
    processor expands it (``llava``: unchanged; ``mllama``: ``<|image|>`` needs no expansion).
    """
    template = _template(template_name)
    plugin = template.mm_plugin
    n_images = user_content.count(IMAGE_PLACEHOLDER)
    if n_images == 0 or plugin.image_token is None:  # a text-only template leaves the tag alone
        return user_content
    plugin = copy.copy(plugin)
    plugin.expand_mm_tokens = False
    try:
        messages = plugin.process_messages(
            [{"role": "user", "content": user_content}], [None] * n_images, [], [], _UNEXPANDED_PROCESSOR
        )
    except (AttributeError, TypeError, ValueError) as err:  # it wanted more of a processor (or the image)
        raise ValueError(
            f"template '{template_name}': its multimodal plugin needs the model's processor or the image to write "
            f"image tokens ({type(err).__name__}: {err}); this template is not supported for lm-eval prompts"
        ) from None
    return messages[0]["content"].replace(plugin.image_token, IMAGE_PLACEHOLDER)


def training_image(
    template_name: str, image: Any, image_max_pixels: int | None = None, image_min_pixels: int | None = None
) -> Any:
    """``image`` (PIL) resized as LLaMA-Factory's plugin does before the image processor sees it.

    LLaMA-Factory shrinks images above ``image_max_pixels`` (and enlarges those below the minimum)
    first; the processor lm-eval calls would otherwise resize the original itself. For Qwen2-VL, whose
    image-token count follows the image size, the two routes round differently and give different
    numbers of image tokens. ``None`` means LLaMA-Factory's default limit (its ModelArguments).
    """
    defaults = ModelArguments.__dataclass_fields__
    if image_max_pixels is None:
        image_max_pixels = defaults["image_max_pixels"].default
    if image_min_pixels is None:
        image_min_pixels = defaults["image_min_pixels"].default
    plugin = _template(template_name).mm_plugin
    return plugin._preprocess_image(image, image_max_pixels=image_max_pixels, image_min_pixels=image_min_pixels)


def render_user_prompt(template_name: str, user_content: str, system: str | None = None) -> str:
    """The exact prompt text a LLaMA-Factory template builds for a first user turn, images unexpanded.

    Images: see :func:`image_placeholder_text`. A leading BOS slot (``mllama``) is left out: LLaMA-Factory
    writes it because it encodes with ``add_special_tokens=False``; lm-eval's processor call keeps the
    defaults, where the processor or tokenizer places BOS (MllamaProcessor prepends it to any text
    lacking one). Any other special-token slot cannot be written as text and raises ValueError.
    """
    template = _template(template_name)
    system = template.default_system if system is None else system
    prefix = list(template.format_prefix.apply())
    if prefix and prefix[0] == {"bos_token"}:
        prefix = prefix[1:]
    elements = prefix
    if system:
        elements += template.format_system.apply(content=system)
    elements += template.format_user.apply(content=image_placeholder_text(template_name, user_content), idx="0")
    if not all(isinstance(element, str) for element in elements):
        raise ValueError(f"template '{template_name}' adds special-token slots; render it with the tokenizer instead")
    return "".join(elements)


def _template(template_name: str) -> Any:
    if template_name not in TEMPLATES:
        raise ValueError(f"unknown LLaMA-Factory template '{template_name}'")
    return TEMPLATES[template_name]
