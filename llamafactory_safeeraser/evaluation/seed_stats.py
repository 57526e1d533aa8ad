"""Numbers over seeds (the demo's tables, the relearning curves): mean, sample standard deviation, count.

The sd is the sample standard deviation (n - 1). Of a single value it is None, not 0: one value measures no
spread, and 0 would read as "every seed agreed". Tables then show the mean alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any


def mean_sd(values: Iterable[float | None]) -> dict[str, Any]:
    """``{"mean", "sd", "n"}`` of the measured values (None values are left out); mean None when there are none,
    sd None unless there are two or more."""
    measured = [float(value) for value in values if value is not None]
    return {
        "mean": statistics.fmean(measured) if measured else None,
        "sd": statistics.stdev(measured) if len(measured) > 1 else None,
        "n": len(measured),
    }


def mean_sd_cell(stats: Mapping[str, Any] | None, scale: float = 100.0, missing: str = "n/a") -> str:
    """'45.8 ± 3.1' (in percent by default); the mean alone without an sd; ``missing`` when nothing was measured."""
    if not stats or stats.get("mean") is None:
        return missing
    text = f"{scale * stats['mean']:.1f}"
    if stats.get("sd") is None or stats.get("n", 0) < 2:  # also a file written when one value's sd was 0
        return text
    return f"{text} ± {scale * stats['sd']:.1f}"
