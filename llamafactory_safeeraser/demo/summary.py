"""The demo's numbers over seeds: mean, standard deviation and count per run and metric, and their tables.

``demo_results.json`` maps a run name (``vanilla``, ``GA``, ``GA+PD``, ... as in the report) to
``{metric: {"mean", "sd", "n"}}`` with the metrics of results.json's summary, plus ``_meta`` (machine, date,
seeds, duration, settings). docs/demo.md's tables are rendered from the committed copy of that file.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..evaluation.report import COLUMNS
from .settings import CPU_COUNT

META_KEY = "_meta"
METRICS = COLUMNS  # results.json summary keys, in the paper table's order, with their report titles
SARR_CUT = "sarr_cut"  # the relative SARR reduction a method's +PD run achieved, per seed


def mean_sd(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (n - 1) of the measured values; sd 0 for a single value."""
    measured = [float(v) for v in values if v is not None]
    if not measured:
        return {"mean": None, "sd": None, "n": 0}
    mean = sum(measured) / len(measured)
    variance = sum((v - mean) ** 2 for v in measured) / (len(measured) - 1) if len(measured) > 1 else 0.0
    return {"mean": mean, "sd": math.sqrt(variance), "n": len(measured)}


def relative_cut(plain: float | None, with_pd: float | None) -> float | None:
    """(SARR without PD - SARR with PD) / SARR without PD; None when there was nothing to cut."""
    if not plain or with_pd is None:
        return None
    return (plain - with_pd) / plain


def aggregate(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], pd_pairs: Sequence[tuple[str, str]]) -> dict:
    """``per_seed``: seed -> run name -> results.json summary. Returns run -> metric -> mean/sd/n, with the
    PD pairs' relative SARR cut under the +PD run (key ``sarr_cut``)."""
    runs = list(dict.fromkeys(name for summaries in per_seed.values() for name in summaries))
    table: dict[str, dict[str, Any]] = {}
    for name in runs:
        table[name] = {
            metric: mean_sd(summaries.get(name, {}).get(metric) for summaries in per_seed.values())
            for metric, _ in METRICS
        }
    for plain, with_pd in pd_pairs:
        if plain in table and with_pd in table:
            cuts = [relative_cut(s[plain].get("sarr"), s[with_pd].get("sarr")) for s in per_seed.values()]
            table[with_pd][SARR_CUT] = mean_sd(cuts)
    return table


def meta(seeds: Sequence[int], duration_s: float, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "machine": f"{platform.machine()}, {_cpu_name()}, {CPU_COUNT} CPU(s) used",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": list(seeds),
        "duration_s": round(duration_s, 1),
        "settings": dict(settings),
    }


def _cpu_name() -> str:
    """The CPU model as Linux names it (platform.processor() is often empty there)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def cell(stats: Mapping[str, Any] | None, scale: float = 100.0) -> str:
    """'mean ± sd' in percent, 'n/a' when nothing was measured."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    if stats["n"] == 1:
        return f"{scale * stats['mean']:.1f}"
    return f"{scale * stats['mean']:.1f} ± {scale * stats['sd']:.1f}"


def main_table(results: Mapping[str, Any]) -> str:
    """The paper-style table: one row per run, mean ± sd over seeds, in percent."""
    lines = ["| Run | " + " | ".join(title for _, title in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name, stats in results.items():
        if name == META_KEY:
            continue
        lines.append(f"| {name} | " + " | ".join(cell(stats.get(metric)) for metric, _ in METRICS) + " |")
    return "\n".join(lines)


def pd_table(results: Mapping[str, Any], pd_pairs: Sequence[tuple[str, str]]) -> str:
    """SARR without and with PD per method, the relative cut, and the forget set's ASR and RR."""
    lines = [
        "| Method | SARR | SARR +PD | SARR cut by PD | ASR eff | ASR eff +PD | RR eff | RR eff +PD |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for plain, with_pd in pd_pairs:
        if plain not in results or with_pd not in results:
            continue
        a, b = results[plain], results[with_pd]
        row = [cell(a["sarr"]), cell(b["sarr"]), cell(b.get(SARR_CUT)), cell(a["asr_eff"]), cell(b["asr_eff"])]
        row += [cell(a["rr_eff"]), cell(b["rr_eff"])]
        lines.append(f"| {plain} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def docs_tables(results: Mapping[str, Any]) -> str:
    """The tables docs/demo.md shows, rendered from a demo_results.json (what a test compares the docs with)."""
    runs = [name for name in results if name != META_KEY]
    pairs = [(name, f"{name}+PD") for name in runs if f"{name}+PD" in runs]
    info = results.get(META_KEY, {})
    seeds = ", ".join(str(seed) for seed in info.get("seeds", []))
    return (
        f"Seeds {seeds}; measured on {info.get('machine', 'an unknown machine')}, {info.get('date', '')}; "
        f"values in percent, mean ± sd over the seeds.\n\n" + main_table(results) + "\n\n" + pd_table(results, pairs)
    )


if __name__ == "__main__":  # python -m llamafactory_safeeraser.demo.summary docs/demo_results.json
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as handle:
        print(docs_tables(json.load(handle)))
