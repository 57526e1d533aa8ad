"""lm-eval hooks of the SafeEraser tasks (``!function utils.x`` in ``_template_yaml``).

lm-eval loads this file by path, not as part of the package, so it imports the package
absolutely; all logic lives in :mod:`llamafactory_safeeraser.lmeval_task`.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.filter import Filter

from llamafactory_safeeraser.lmeval_task import documents, scoring
from llamafactory_safeeraser.lmeval_task.attacks import documents as attacked


def category_dataset(kind: str, category: str, **metadata: Any) -> Any:
    """One subtask's documents: ``kind`` and ``category`` come from its ``dataset_kwargs``."""
    return documents.task_dataset(kind, metadata, category)


def doc_to_image(doc: dict) -> list:
    return [documents.load_image(doc)]


def attack_dataset(attack: str, kind: str, **metadata: Any) -> Any:
    """An attack task's documents: ``attack`` and ``kind`` come from its ``dataset_kwargs``."""
    return attacked.attack_dataset(attack, kind, metadata)


def attack_doc_to_image(doc: dict) -> list:
    return [attacked.load_image(doc)]


def process_results(doc: dict, results: list[str]) -> dict:
    scored = scoring.score_response(doc, results[0])
    # lm-eval logs only numbers besides this document (--log_samples), so the judge's verdict and reason for
    # the response travel in it: the logged sample's doc["judgements"].
    doc[scoring.JUDGEMENTS_KEY] = scored.judgements
    return scored.metrics()


class PrefetchJudgements(Filter):
    """Passes responses through unchanged after letting model judges answer them all at once."""

    def apply(self, resps: Any, docs: list[dict]) -> list:
        responses = list(resps)
        scoring.prefetch_judgements(docs, responses)
        return responses
