"""``report.md`` and a PNG plot comparing runs, from their ``results.json`` files.

Rows are runs; the main table has the paper's columns (ASR/RR on efficacy and generality,
ROUGE-L, judge score, SARR) in percent, and Spec when a run folder has a specificity.json. Runs named ``X``
and ``X+PD`` are paired: the plot (``plot.py``) puts each method's pair side by side, and a table lists the
change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.records import CATEGORIES
from ..errors import SafeEraserError
from ..fileio import write_text_atomic
from ..lmeval_task.documents import TASK_KINDS
from .plot import PLOT_TITLE, plot_runs
from .results import load_run_results, pd_pairs
from .specificity import load_specificity, specificity_columns

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


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _specificity_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    names = specificity_columns()
    rows = []
    for run in runs:
        found = run.get("specificity") or {}
        scores = found.get("scores", {})
        rows.append([_escape(run["run"]["name"]), *(percent(scores.get(name)) for name in names)])
        rows[-1].append(percent(found.get("specificity")))
    return [
        "",
        "## Specificity",
        "",
        "General benchmarks run by lmms-eval (`safeeraser specificity`), in percent; Spec is their mean (the "
        "paper's), n/a unless all seven were run.",
        "",
        *_table(["Run", *names, "Spec ↑"], rows),
    ]


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
    with_spec = any(run.get("specificity") for run in runs)
    lines += _table(
        ["Run", *(title for _, title in COLUMNS), *(["Spec ↑"] if with_spec else [])],
        [
            [
                _escape(run["run"]["name"]),
                *(percent(run["summary"].get(key)) for key, _ in COLUMNS),
                *([percent((run.get("specificity") or {}).get("specificity"))] if with_spec else []),
            ]
            for run in runs
        ],
    )
    if plot_file:
        lines += ["", f"![{PLOT_TITLE}]({plot_file})"]
    if with_spec:
        lines += _specificity_table(runs)

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
            per_category = run.get("tasks", {}).get(kind, {}).get("per_category", {})  # category -> its numbers
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


def write_report(run_dirs: Sequence[str | Path], out_path: str | Path) -> Path:
    """Write ``out_path`` (Markdown) and, beside it, ``<stem>.png``; returns the report path."""
    if not run_dirs:
        raise SafeEraserError("no run folders given for the report")
    runs = [{**load_run_results(run_dir), "specificity": load_specificity(run_dir)} for run_dir in run_dirs]
    out_path = Path(out_path)
    plot_path = out_path.with_suffix(".png")
    plotted = plot_runs(runs, plot_path)
    write_text_atomic(out_path, render_report(runs, plot_path.name if plotted else None))
    return out_path
