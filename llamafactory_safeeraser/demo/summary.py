"""The demo's numbers over seeds: mean, standard deviation and count per run and metric, and their tables.

``demo_results.json`` maps a run name (``vanilla``, ``GA``, ``GA+PD``, ... as in the report) to
``{metric: {"mean", "sd", "n"}}`` with the metrics of results.json's summary, plus ``_meta`` (machine, date,
seeds, duration, settings). docs/demo.md's tables are rendered from the committed copy of that file.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..evaluation.markdown import markdown_table
from ..evaluation.results import pd_pairs
from ..evaluation.seed_stats import mean_sd, mean_sd_cell
from ..lmeval_task import metric_catalog
from .settings import CPU_COUNT

META_KEY = "_meta"
SARR_CUT = "sarr_cut"  # the relative SARR reduction a method's +PD run achieved, per seed


def metric_columns() -> list[tuple[str, str]]:
    """(results.json summary key, title) of the report's main table, in the paper's order: the demo's metrics."""
    return [(column.key, column.title) for column in metric_catalog.main_table()]


def relative_cut(plain: float | None, with_pd: float | None) -> float | None:
    """(SARR without PD - SARR with PD) / SARR without PD; None when there was nothing to cut."""
    if not plain or with_pd is None:
        return None
    return (plain - with_pd) / plain


def aggregate(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], pairs: Sequence[tuple[str, str]]) -> dict:
    """``per_seed``: seed -> run name -> results.json summary. Returns run -> metric -> mean/sd/n, with the
    PD pairs' relative SARR cut under the +PD run (key ``sarr_cut``)."""
    runs = list(dict.fromkeys(name for summaries in per_seed.values() for name in summaries))
    table: dict[str, dict[str, Any]] = {}
    for name in runs:
        table[name] = {
            metric: mean_sd(summaries.get(name, {}).get(metric) for summaries in per_seed.values())
            for metric, _ in metric_columns()
        }
    for plain, with_pd in pairs:
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


def main_table(results: Mapping[str, Any]) -> str:
    """The paper-style table: one row per run, mean ± sd over seeds, in percent."""
    columns = metric_columns()
    rows = [
        [name, *(mean_sd_cell(stats.get(metric)) for metric, _ in columns)]
        for name, stats in results.items()
        if name != META_KEY
    ]
    return "\n".join(markdown_table(["Run", *(title for _, title in columns)], rows))


def pd_table(results: Mapping[str, Any], pairs: Sequence[tuple[str, str]]) -> str:
    """SARR without and with PD per method, the relative cut, and the forget set's ASR and RR."""
    header = ["Method", "SARR", "SARR +PD", "SARR cut by PD", "ASR eff", "ASR eff +PD", "RR eff", "RR eff +PD"]
    rows = []
    for plain, with_pd in pairs:
        if plain not in results or with_pd not in results:
            continue
        a, b = results[plain], results[with_pd]
        row = [
            mean_sd_cell(a["sarr"]),
            mean_sd_cell(b["sarr"]),
            mean_sd_cell(b.get(SARR_CUT)),
            mean_sd_cell(a["asr_eff"]),
            mean_sd_cell(b["asr_eff"]),
        ]
        rows.append([plain, *row, mean_sd_cell(a["rr_eff"]), mean_sd_cell(b["rr_eff"])])
    return "\n".join(markdown_table(header, rows))


def docs_tables(results: Mapping[str, Any]) -> str:
    """The tables docs/demo.md shows, rendered from a demo_results.json (what a test compares the docs with)."""
    runs = [name for name in results if name != META_KEY]
    pairs = pd_pairs(runs)
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
