"""A recovery curve: each metric per relearning step count, as mean and sample sd over the seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..evaluation.seed_stats import mean_sd
from ..lmeval_task import metric_catalog


def aggregate(seed_points: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per step count, every headline metric that was measured, over the seeds.

    ``seed_points``: per seed, its points ``{"steps": s, "summary": {metric: value or None}}``.
    """
    curve = []
    steps = sorted({point["steps"] for points in seed_points for point in points})
    for count in steps:
        at_count = [point["summary"] for points in seed_points for point in points if point["steps"] == count]
        metrics = {}
        for metric in (column.key for column in metric_catalog.headline()):
            values = [summary[metric] for summary in at_count if summary.get(metric) is not None]
            if values:
                metrics[metric] = mean_sd(values)
        curve.append({"steps": count, "metrics": metrics})
    return curve
