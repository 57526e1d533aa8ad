"""The lm-eval documents of the SafeEraser tasks, built from the benchmark files.

Four task kinds (efficacy, generality, sarr, utility), each an lm-eval group whose subtasks are the six
harm categories: ``task_dataset(kind, metadata, category)`` is one subtask's data.

Which files: lm-eval ``--metadata`` (or ``TaskManager(metadata=...)``) keys ``data_dir``
(holding ``all_train.json`` and ``all_val.json``), or ``train_file`` / ``val_file``; else the
``SAFEERASER_DATA_DIR`` environment variable. Other metadata keys: ``harmful_samples`` (responses
sampled per harmful question, default 3, implemented by repeating the document), ``template``
(LLaMA-Factory template that renders the prompt, default ``llava``), ``sarr_question`` (``harmful``, the
default and the reference's: SARR asks the harmful question about the SD image; or ``sd_question``),
``image_max_pixels`` / ``image_min_pixels`` (the training run's LLaMA-Factory keys of the same name; images
are resized as training resized them), ``tokenizer`` (the evaluated model's folder or hub id: prompts are
written so that its tokenizer encodes them into the ids training saw, see
``integration.template_text.text_encoding_like_template``; ``safeeraser eval`` sets it to each run's model),
``attack_seed`` (the seed of the attack tasks' documents, ``attacks.documents``) and the judge keys of
:meth:`JudgeConfig.from_metadata`.

Every document carries its rendered prompt, its image path and its judge settings, so scoring
needs nothing but the document and the response.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.records import (
    CATEGORIES,
    SD_IMAGE_QUESTIONS,
    UNHARM_IMAGE_FIELDS,
    UNHARM_TEXT_FIELDS,
    SafeEraserRecord,
    read_benchmark,
)
from ..data.user_turn import user_turn
from ..errors import SafeEraserError
from ..settings import METADATA, build, check_settings, group, read_values, setting
from .judges import JudgeConfig
from .judges.config import PREFIX as JUDGE_PREFIX

# The lm-eval task folder these documents feed (``--include_path``): its YAML names the functions of
# ``utils.py`` there, which call this module and ``scoring``.
TASK_DIR = Path(__file__).resolve().parents[1] / "tasks" / "safeeraser"
GROUP = "safeeraser"
TASK_KINDS = ("efficacy", "generality", "sarr", "utility")
SUBTASKS = tuple(f"{GROUP}_{kind}" for kind in TASK_KINDS)  # the kinds' groups, members of GROUP
HARMFUL_KINDS = ("efficacy", "generality")
DATA_DIR_ENV_VAR = "SAFEERASER_DATA_DIR"
FILE_NAMES = {"train": "all_train.json", "val": "all_val.json"}
FILE_OF_TASK = {"efficacy": "train", "generality": "val", "sarr": "val", "utility": "val"}
DEFAULT_HARMFUL_SAMPLES = 3
DEFAULT_TEMPLATE = "llava"


@dataclass(frozen=True)
class TaskSettings:
    """The tasks' own metadata keys, declared once (``safeeraser eval`` reads them as config keys too)."""

    template: str = setting(DEFAULT_TEMPLATE, help="LLaMA-Factory template the model was trained with")
    image_max_pixels: int | None = setting(
        help="the training run's image_max_pixels (none: LLaMA-Factory's 768*768)", minimum=1
    )
    image_min_pixels: int | None = setting(
        help="the training run's image_min_pixels (none: LLaMA-Factory's 32*32)", minimum=1
    )
    data_dir: Path | None = setting(
        help=f"folder holding all_train.json and all_val.json (none: env {DATA_DIR_ENV_VAR})", flags=("--data",)
    )
    train_file: Path | None = setting(help="the forget set file instead of <data_dir>/all_train.json")
    val_file: Path | None = setting(help="the held-out file instead of <data_dir>/all_val.json")
    harmful_samples: int = setting(DEFAULT_HARMFUL_SAMPLES, help="responses sampled per harmful question", minimum=1)
    sarr_question: str = setting(
        "harmful",
        help="what SARR asks about the SD image: the harmful question (the reference) or a record's sd_question",
        choices=SD_IMAGE_QUESTIONS,
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class TaskOptions(TaskSettings):
    """What a task reads from lm-eval's metadata: the task keys, the judge keys (``judge``, ``judge_model``, ...),
    the evaluated model's ``tokenizer``; ``train_file`` / ``val_file`` resolved (from ``data_dir`` or the
    environment), None when no data is given."""

    judge: JudgeConfig = group(JudgeConfig, JUDGE_PREFIX)
    tokenizer: str | None = setting(
        help="the evaluated model's tokenizer (none: the prompt's parts joined as they are); set per run"
    )
    attack_seed: int = setting(
        0, help="seed of the attacked documents (safeeraser_attacks tasks); safeeraser eval sets its seed"
    )

    def data_file(self, which: str) -> Path:
        path = self.train_file if which == "train" else self.val_file
        if path is None:
            raise SafeEraserError(
                f"no SafeEraser data given for {FILE_NAMES[which]}: pass lm-eval --metadata "
                f"'{{\"data_dir\": \"DIR\"}}' (or '{which}_file'), or set {DATA_DIR_ENV_VAR}"
            )
        return path

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TaskOptions:
        given = build(cls, read_values(cls, [(METADATA, metadata)], unknown=True))
        data_dir = given.data_dir or os.environ.get(DATA_DIR_ENV_VAR)
        files: dict[str, Path | None] = {}
        for which, name in FILE_NAMES.items():
            explicit = getattr(given, f"{which}_file")
            chosen = explicit or (Path(data_dir).expanduser() / name if data_dir else None)
            files[which] = Path(chosen).expanduser().resolve() if chosen else None
        return dataclasses.replace(given, train_file=files["train"], val_file=files["val"])


@functools.lru_cache(maxsize=256)
def render_prompt(template: str, question: str, tokenizer: str | None = None) -> str:
    """The prompt text LLaMA-Factory's template builds for (image, question): what training saw.

    ``tokenizer``: the evaluated model's folder or hub id (metadata ``tokenizer``). Its tokenizer writes the text
    as training encodes it; where the template's multimodal plugin reads the processor (``gemma3``), the
    model's processor renders the image tokens, unexpanded, as LLaMA-Factory's vLLM engine has them.
    """
    from ..integration.template_text import plugin_needs_processor, render_user_prompt

    try:
        processor = load_processor(tokenizer) if tokenizer is not None and plugin_needs_processor(template) else None
        model_tokenizer = processor.tokenizer if processor is not None else load_tokenizer(tokenizer)
        return render_user_prompt(template, user_turn(question), tokenizer=model_tokenizer, processor=processor)
    except ValueError as err:
        hint = "; pass the model's folder as metadata 'tokenizer'" if tokenizer is None else ""
        raise SafeEraserError(f"metadata 'template': {err}{hint}") from None


@functools.lru_cache(maxsize=4)
def load_tokenizer(location: str | None) -> Any:
    """The tokenizer of a model folder or hub id (metadata ``tokenizer``); None for None."""
    if location is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise SafeEraserError(f"metadata 'tokenizer': cannot load a tokenizer from {location}: {err}") from None


@functools.lru_cache(maxsize=4)
def load_processor(location: str) -> Any:
    """The processor of a model folder or hub id (metadata ``tokenizer``), for plugins that read it."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise SafeEraserError(f"metadata 'tokenizer': cannot load a processor from {location}: {err}") from None


def read_image(path: str | Path) -> Any:
    """An image file as RGB (PIL), as the record holds it."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def training_resized(doc: Mapping[str, Any], image: Any) -> Any:
    """``image`` resized as LLaMA-Factory resized the document's images in training."""
    from ..integration.template_text import training_image

    return training_image(doc["template"], image, doc["image_max_pixels"], doc["image_min_pixels"])


def load_image(doc: Mapping[str, Any]) -> Any:
    """The document's image, resized as LLaMA-Factory resized it in training (RGB, PIL)."""
    return training_resized(doc, read_image(doc["image_path"]))


def file_stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat() if path.is_file() else None
    return (str(path), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@functools.lru_cache(maxsize=16)
def _records(stamp: tuple[str, int, int], check_images: bool) -> tuple[SafeEraserRecord, ...]:
    return tuple(read_benchmark(stamp[0], check_images=check_images))


def load_records(path: Path, check_images: bool = True) -> tuple[SafeEraserRecord, ...]:
    """Validated records, read once per file version (the demo evaluates many runs on one file)."""
    return _records(file_stamp(path), check_images)


def build_docs(kind: str, records: tuple[SafeEraserRecord, ...], source_file: Path, options: TaskOptions) -> list[dict]:
    """One document per generation: harmful questions repeated ``harmful_samples`` times."""
    judge = options.judge.to_json()

    def doc(record: SafeEraserRecord, item: str, sample: int, question: str, reference: str, image: Path) -> dict:
        return {
            "task_kind": kind,
            "record": record.index,
            "category": record.category,
            "keyword": record.keyword or "",
            "item": item,
            "sample": sample,
            "question": question,
            "reference": reference,
            "image_path": str(image),
            "prompt": render_prompt(options.template, question, options.tokenizer),
            "template": options.template,
            "image_max_pixels": options.image_max_pixels,
            "image_min_pixels": options.image_min_pixels,
            "source_file": str(source_file),
            "judge": judge,
        }

    docs = []
    for record in records:
        if kind in HARMFUL_KINDS:
            for j, pair in enumerate(record.unsafe_pairs):
                for sample in range(options.harmful_samples):
                    docs.append(
                        doc(record, f"unsafe_pairs[{j}]", sample, pair.question, pair.model_response, record.image_path)
                    )
        elif kind == "sarr":
            for j, pair in enumerate(record.unsafe_pairs):
                docs.append(
                    doc(
                        record,
                        f"unsafe_pairs[{j}]",
                        0,
                        pair.question_for_sd_image(options.sarr_question),
                        pair.sd_response,
                        record.sd_image_path,
                    )
                )
        else:
            for field, qa in zip(UNHARM_TEXT_FIELDS + UNHARM_IMAGE_FIELDS, record.retain_pairs, strict=True):
                docs.append(doc(record, field, 0, qa.question, qa.answer, record.image_path))
    return docs


@functools.lru_cache(maxsize=32)
def cached_docs(kind: str, stamp: tuple[str, int, int], options: TaskOptions) -> tuple[dict, ...]:
    """A kind's documents from one file version (``stamp``: :func:`file_stamp`), built once; callers copy them."""
    source = Path(stamp[0])
    return tuple(build_docs(kind, load_records(source), source, options))


def category_slug(category: str) -> str:
    """The task-name form of a category: ``HateSpeech`` -> ``hate_speech``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", category).lower()


def category_task(kind: str, category: str) -> str:
    """The lm-eval subtask of one kind and category, e.g. ``safeeraser_efficacy_hate_speech``."""
    return f"{GROUP}_{kind}_{category_slug(category)}"


def task_docs(kind: str, metadata: Mapping[str, Any], category: str | None = None) -> list[dict]:
    """The documents of a task kind, all categories or one (in file order)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown SafeEraser task kind '{kind}'")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown SafeEraser category '{category}'")
    options = TaskOptions.from_metadata(metadata)
    source = options.data_file(FILE_OF_TASK[kind])
    docs = [dict(doc) for doc in cached_docs(kind, file_stamp(source), options)]
    if category is None:
        return docs
    chosen = [doc for doc in docs if doc["category"] == category]
    if not chosen:  # lm-eval cannot run a task without documents
        raise SafeEraserError(
            f"{source}: no record of category '{category}'; the {GROUP} tasks need every category "
            f"({', '.join(CATEGORIES)})"
        )
    return chosen


def task_dataset(kind: str, metadata: Mapping[str, Any], category: str) -> Any:
    """What a category subtask's ``custom_dataset`` returns: a DatasetDict with one ``test`` split."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(task_docs(kind, metadata, category))})
