"""lm-eval hooks of the SafeEraser tasks (``!function utils.x`` in the YAML files).

lm-eval loads this file by path, not as part of the package, so it imports the package
absolutely; all logic lives in :mod:`llamafactory_safeeraser.evaluation`.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.filter import Filter

from llamafactory_safeeraser.evaluation import documents, scoring


def efficacy_dataset(**metadata: Any) -> Any:
    return documents.task_dataset("efficacy", metadata)


def generality_dataset(**metadata: Any) -> Any:
    return documents.task_dataset("generality", metadata)


def sarr_dataset(**metadata: Any) -> Any:
    return documents.task_dataset("sarr", metadata)


def utility_dataset(**metadata: Any) -> Any:
    return documents.task_dataset("utility", metadata)


def doc_to_image(doc: dict) -> list:
    return [documents.load_image(doc)]


def process_results(doc: dict, results: list[str]) -> dict:
    return scoring.score_response(doc, results[0])


mean_ignoring_none = scoring.mean_ignoring_none
total = scoring.total


class PrefetchJudgements(Filter):
    """Passes responses through unchanged after letting model judges answer them all at once."""

    def apply(self, resps: Any, docs: list[dict]) -> list:
        responses = list(resps)
        scoring.prefetch_judgements(docs, responses)
        return responses
