"""``report.md`` and a PNG plot comparing runs, from their ``results.json`` files.

Rows are runs; the main table has the paper's columns (ASR/RR on efficacy and generality,
ROUGE-L, judge score, SARR) in percent. Runs named ``X`` and ``X+PD`` are paired: the plot
draws an arrow from each method to its prompt-decoupled variant, and a table lists the change.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.records import CATEGORIES
from ..errors import SafeEraserError
from ..fileio import write_bytes_atomic, write_text_atomic
from .documents import TASK_KINDS
from .results import load_run_results

COLUMNS = (
    ("asr_eff", "ASR eff ↓"),
    ("rr_eff", "RR eff ↑"),
    ("asr_gen", "ASR gen ↓"),
    ("rr_gen", "RR gen ↑"),
    ("rouge_l_recall", "ROUGE-L ↑"),
    ("judge_score", "Judge score ↑"),
    ("sarr", "SARR ↓"),
)
CATEGORY_TABLES = (
    ("efficacy", "asr", "ASR on the forget set (efficacy) ↓"),
    ("efficacy", "rr", "RR on the forget set (efficacy) ↑"),
    ("generality", "asr", "ASR on unseen data (generality) ↓"),
    ("generality", "rr", "RR on unseen data (generality) ↑"),
    ("sarr", "sarr", "SARR (benign image + harmful question) ↓"),
    ("utility", "rouge_l_recall", "ROUGE-L, LCS / reference length (UnharmPair questions) ↑"),
    ("utility", "judge_score", "Judge score (UnharmPair questions) ↑"),
)
_PD_SUFFIX = re.compile(r"^(?P<method>.+?)\s*\+\s*PD$", re.IGNORECASE)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def pd_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(X, X+PD) name pairs among ``names``."""
    present = set(names)
    pairs = []
    for name in names:
        match = _PD_SUFFIX.match(name)
        if match and match.group("method") in present:
            pairs.append((match.group("method"), name))
    return pairs


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_report(runs: Sequence[dict[str, Any]], plot_file: str | None = None) -> str:
    """The Markdown report for loaded results (``plot_file``: the PNG's name next to the report)."""
    names = [run["run"]["name"] for run in runs]
    judges = sorted({run["judge"]["config"]["name"] for run in runs})
    lines = [
        "# SafeEraser evaluation",
        "",
        f"{len(runs)} run(s); judge: {', '.join(judges)}. Values are percentages; ↓ lower is better, ↑ higher is "
        "better; n/a = not measured. Definitions: docs/evaluation.md.",
    ]
    if "rule" in judges:
        lines += [
            "",
            "The `rule` judge is offline: its ASR counts responses that reproduce the forgotten answer (no refusal, "
            "not degenerate, high ROUGE-L recall of the forget target) and its judge score is ROUGE-L F1. Both are "
            "lexical proxies, not harm or factuality classifiers.",
        ]
    lines += [
        "",
        "## Main results",
        "",
        "ROUGE-L here is LCS / reference length (the recall of the reference's words), the number the SafeEraser "
        "release reports, so it compares with the paper; results.json also holds `rouge_l_precision` "
        "(LCS / response length), which a verbose correct answer lowers.",
        "",
    ]
    lines += _table(
        ["Run", *(title for _, title in COLUMNS)],
        [[_escape(run["run"]["name"]), *(percent(run["summary"].get(key)) for key, _ in COLUMNS)] for run in runs],
    )
    if plot_file:
        lines += ["", f"![SARR against ASR on the forget set]({plot_file})"]

    by_name = {run["run"]["name"]: run for run in runs}
    pairs = pd_pairs(names)
    if pairs:
        lines += ["", "## Effect of prompt decouple (PD)", ""]
        rows, reductions = [], []
        for method, with_pd in pairs:
            before, after = by_name[method]["summary"], by_name[with_pd]["summary"]
            change = "n/a"
            if before.get("sarr") and after.get("sarr") is not None:
                reduction = (before["sarr"] - after["sarr"]) / before["sarr"]
                reductions.append(reduction)
                change = f"{-100 * reduction:+.1f}%"
            rows.append(
                [
                    _escape(method),
                    percent(before.get("sarr")),
                    percent(after.get("sarr")),
                    change,
                    percent(before.get("asr_eff")),
                    percent(after.get("asr_eff")),
                    percent(before.get("rouge_l_recall")),
                    percent(after.get("rouge_l_recall")),
                ]
            )
        lines += _table(
            ["Method", "SARR", "SARR +PD", "SARR change", "ASR eff", "ASR eff +PD", "ROUGE-L", "ROUGE-L +PD"], rows
        )
        if reductions:
            lines += ["", f"Mean relative SARR reduction with PD: {100 * sum(reductions) / len(reductions):.1f}%."]

    lines += ["", "## Per category"]
    for kind, metric, title in CATEGORY_TABLES:
        rows = []
        for run in runs:
            per_category = run.get("tasks", {}).get(kind, {}).get("per_category", {})
            values = [percent(per_category.get(category, {}).get(metric)) for category in CATEGORIES]
            rows.append([_escape(run["run"]["name"]), *values])
        lines += ["", f"### {title}", ""]
        lines += _table(["Run", *CATEGORIES], rows)

    lines += ["", "## Judge failures", "", "Responses the judge could not rate; no rate above counts them.", ""]
    lines += _table(
        ["Run", *TASK_KINDS, "total"],
        [
            [
                _escape(run["run"]["name"]),
                *(str(run["judge_failures"].get(kind, "n/a")) for kind in TASK_KINDS),
                str(run["judge_failures"].get("total", 0)),
            ]
            for run in runs
        ],
    )

    lines += ["", "## Settings", ""]
    rows = []
    for run in runs:
        settings, judge = run["settings"], run["judge"]["config"]
        gen = settings.get("generation_kwargs") or {}
        rows.append(
            [
                _escape(run["run"]["name"]),
                _escape(run["run"]["model"]),
                _escape(run["run"]["adapter"] or "-"),
                judge["name"] + (f" ({judge['model']})" if judge.get("model") else ""),
                str(settings.get("harmful_samples")),
                str(gen.get("max_gen_toks", "n/a")),
                str(settings.get("limit") if settings.get("limit") is not None else "-"),
                str(settings.get("seed")),
            ]
        )
    lines += _table(
        ["Run", "Model", "Adapter", "Judge", "Samples per harmful question", "Max new tokens", "Limit", "Seed"], rows
    )
    return "\n".join(lines) + "\n"


def plot_runs(runs: Sequence[dict[str, Any]], path: str | Path) -> bool:
    """SARR against ASR on the forget set, one point per run, arrows X -> X+PD. False if nothing to plot."""
    points = {
        run["run"]["name"]: (100 * run["summary"]["asr_eff"], 100 * run["summary"]["sarr"])
        for run in runs
        if run["summary"].get("asr_eff") is not None and run["summary"].get("sarr") is not None
    }
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    try:
        labels: dict[tuple[int, int], list[str]] = {}
        for name, (x, y) in points.items():
            axes.scatter([x], [y], s=36, zorder=3)
            labels.setdefault((round(x / 2), round(y / 2)), []).append(name)  # runs within 2 points share a label
        for names in labels.values():
            axes.annotate(", ".join(names), points[names[0]], textcoords="offset points", xytext=(5, 5), fontsize=8)
        for method, with_pd in pd_pairs(list(points)):
            axes.annotate(
                "", xy=points[with_pd], xytext=points[method], arrowprops={"arrowstyle": "->", "color": "tab:green"}
            )
        axes.set_xlabel("ASR on the forget set (%) - lower is better")
        axes.set_ylabel("SARR (%) - lower is better")
        axes.set_title("Over-forgetting (SARR) vs forget efficacy; arrows: method -> method+PD", fontsize=9)
        axes.set_xlim(-5, 105)
        axes.set_ylim(-5, 105)
        axes.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return True


def write_report(run_dirs: Sequence[str | Path], out_path: str | Path) -> Path:
    """Write ``out_path`` (Markdown) and, beside it, ``<stem>.png``; returns the report path."""
    if not run_dirs:
        raise SafeEraserError("no run folders given for the report")
    runs = [load_run_results(run_dir) for run_dir in run_dirs]
    out_path = Path(out_path)
    plot_path = out_path.with_suffix(".png")
    plotted = plot_runs(runs, plot_path)
    write_text_atomic(out_path, render_report(runs, plot_path.name if plotted else None))
    return out_path
