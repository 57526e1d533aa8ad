"""The documents of the attack tasks: a task kind's documents (``..documents``), each changed by one attack.

``attack_docs(name, kind, metadata)`` is every document of the kind (all categories in one task) with the
attacked question rendered into its ``prompt`` and the attack's fields added: ``attack``, ``attack_family``,
``attack_strength`` (so every ``--log_samples`` line names them), ``attack_question`` (what the model is asked)
and ``attack_seed`` (the document's rng seed, :func:`.attack.document_seed`). ``question`` stays the record's:
the judge rates the response against the harmful question, whatever wrapped it. The attacked image is made when
lm-eval asks for it (:func:`load_image`), from the record's image and the same seed, so documents stay small.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...data.records import concept_text
from ...errors import SafeEraserError
from .. import documents
from ..documents import FILE_OF_TASK, TaskOptions, file_stamp
from ..judges import JudgeConfig
from .attack import Attack, AttackContext, AttackInput, document_seed
from .catalog import attack as find_attack


def _context(doc: Mapping[str, Any]) -> AttackContext:
    concept = concept_text(doc["keyword"] or None, doc["category"])
    return AttackContext(kind=doc["task_kind"], judge=_judge(doc["judge"]), concept=concept)


@functools.lru_cache(maxsize=8)
def _judge(judge_json: str) -> JudgeConfig:
    return JudgeConfig.from_json(judge_json)


def _attacked(chosen: Attack, doc: Mapping[str, Any], seed: int) -> AttackInput:
    """The attack applied to the document's question and image (the record's, before the training resize)."""
    given = AttackInput(doc["question"], documents.read_image(doc["image_path"]))
    try:
        return chosen.apply(given, random.Random(seed), _context(doc))
    except ValueError as err:
        raise SafeEraserError(
            f"{doc['source_file']}: record {doc['record']}, {doc['item']}: attack {chosen.name}: {err}"
        ) from None


@functools.lru_cache(maxsize=32)
def _cached_attack_docs(name: str, kind: str, stamp: tuple[str, int, int], options: TaskOptions) -> tuple[dict, ...]:
    chosen = find_attack(name)
    attacked: dict[tuple[int, str], tuple[int, str]] = {}  # (record, item) -> (seed, question): samples share them
    docs = []
    for doc in documents.cached_docs(kind, stamp, options):
        key = (doc["record"], doc["item"])
        if key not in attacked:
            seed = document_seed(doc["record"], doc["item"], name, kind, options.attack_seed)
            question = _attacked(chosen, doc, seed).question if chosen.edits_question else doc["question"]
            attacked[key] = (seed, question)
        seed, question = attacked[key]
        docs.append(
            {
                **doc,
                "attack": chosen.name,
                "attack_family": chosen.family,
                "attack_strength": chosen.strength,
                "attack_seed": seed,
                "attack_question": question,
                "prompt": documents.render_prompt(options.template, question, options.tokenizer),
            }
        )
    return tuple(docs)


def attack_docs(name: str, kind: str, metadata: Mapping[str, Any]) -> list[dict]:
    """Every document of ``kind`` (all categories, file order) under attack ``name``."""
    chosen = find_attack(name)
    if kind not in chosen.kinds:
        raise ValueError(f"attack {name!r} does not attack task kind {kind!r} (only {', '.join(chosen.kinds)})")
    options = TaskOptions.from_metadata(metadata)
    source: Path = options.data_file(FILE_OF_TASK[kind])
    return [dict(doc) for doc in _cached_attack_docs(name, kind, file_stamp(source), options)]


def attack_dataset(name: str, kind: str, metadata: Mapping[str, Any]) -> Any:
    """What an attack task's ``custom_dataset`` returns: a DatasetDict with one ``test`` split."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(attack_docs(name, kind, metadata))})


def load_image(doc: Mapping[str, Any]) -> Any:
    """The attacked document's image, resized as LLaMA-Factory resized images in training (RGB, PIL)."""
    chosen = find_attack(doc["attack"])
    if not chosen.edits_image:
        return documents.load_image(doc)
    return documents.training_resized(doc, _attacked(chosen, doc, doc["attack_seed"]).image)
