"""lm-eval's own aggregation run on hand-written responses instead of a model's (no generation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def aggregate_responses(task_dict: dict[str, Any], respond: Callable[[dict], str]) -> dict[str, Any]:
    """What ``simple_evaluate`` returns after generation (aggregation, groups, logged samples) for the responses
    ``respond(doc)`` gives to the documents of ``task_dict`` (a ``TaskManager.load`` result)."""
    from lm_eval.evaluator_utils import _process_results

    accumulated = {}
    for name, task in task_dict["tasks"].items():
        raw_metrics: dict = {}
        samples = []
        for doc_id, doc in enumerate(task.eval_docs):
            response = respond(doc)
            metrics = task.process_results(doc, [response])
            samples.append({"doc_id": doc_id, "doc": doc, "filtered_resps": [response], "metrics": list(metrics)})
            samples[-1].update(metrics)
            for metric, value in metrics.items():
                raw_metrics.setdefault((metric, "none"), []).append(value)
        accumulated[name] = {"task": task, "raw_metrics": raw_metrics, "logged_samples": samples}
    result = _process_results(accumulated, task_dict["groups"], bootstrap_iters=100000)
    return result._to_eval_results(samples=result.samples)
