"""``report.md`` and a PNG plot comparing runs, from their ``results.json`` files.

Rows are runs; the main table has the paper's columns (ASR/RR on efficacy and generality, ROUGE-L, judge score,
SARR) in percent, and Spec when a run folder has a specificity.json. The columns, the per-category tables and the
plot's panels are the headline columns declared in ``lmeval_task.metric_catalog``. Runs named ``X`` and ``X+PD``
are paired: the plot (``plot.py``) puts each method's pair side by side, and a table lists the change. Each run
name is shown once: two run folders of one name are refused. When runs were attacked, quantized (``X@int4``) or
relearned, a Robustness section (``robustness.py``) and its plot (``<stem>_robustness.png``) follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.records import CATEGORIES
from ..errors import SafeEraserError
from ..fileio import write_text_atomic
from ..lmeval_task import metric_catalog
from ..lmeval_task.documents import TASK_KINDS
from ..lmeval_task.metric_catalog import Headline
from .markdown import escape as _escape
from .markdown import markdown_table as _table
from .markdown import percent
from .plot import plot_runs, plot_title
from .results import RESULTS_FILE, load_run_results, pd_pairs
from .robustness import Robustness, collect, section
from .robustness_plot import plot_robustness
from .specificity import load_specificity, specificity_columns


def shown(column: Headline, value: float | None) -> str:
    """A headline value as the tables show it: a rate in percent, any other number as it is."""
    if column.metric.percent or value is None:
        return percent(value)
    return f"{value:.3g}"


def category_tables() -> list[tuple[Headline, str]]:
    """(column, title) of each per-category table, in the order of the task kinds."""
    declared = [h for h in metric_catalog.headline() if h.column.per_category]
    return [(h, f"{h.column.per_category} {h.metric.arrow}") for h in metric_catalog.by_task_kind(tuple(declared))]


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


def render_report(
    runs: Sequence[dict[str, Any]],
    plot_file: str | None = None,
    robustness: Robustness | None = None,
    robustness_plot: str | None = None,
) -> str:
    """The Markdown report for loaded results (``plot_file``, ``robustness_plot``: the PNGs' names next to the
    report; ``robustness``: the Robustness section's numbers, by default from ``runs`` alone)."""
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
    columns = metric_catalog.main_table()
    lines += _table(
        ["Run", *(column.title for column in columns), *(["Spec ↑"] if with_spec else [])],
        [
            [
                _escape(run["run"]["name"]),
                *(shown(column, run["summary"].get(column.key)) for column in columns),
                *([percent((run.get("specificity") or {}).get("specificity"))] if with_spec else []),
            ]
            for run in runs
        ],
    )
    if plot_file:
        lines += ["", f"![{plot_title()}]({plot_file})"]
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
                relative = (after["sarr"] - before["sarr"]) / before["sarr"]
                reductions.append(-relative)
                change = f"{100 * relative:+.1f}%"  # an unchanged SARR reads +0.0%, not -0.0%
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
    lines += section(robustness if robustness is not None else collect(runs), robustness_plot)

    lines += ["", "## Per category"]
    for column, title in category_tables():
        rows = []
        for run in runs:
            per_category = run.get("tasks", {}).get(column.kind, {}).get("per_category", {})  # category -> numbers
            values = [shown(column, per_category.get(category, {}).get(column.metric.name)) for category in CATEGORIES]
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


def check_unique_names(runs: Sequence[dict[str, Any]], run_dirs: Sequence[str | Path]) -> None:
    """One run name, one row and one plot point: two folders whose results.json carry the same name are refused
    (the plot groups runs by name, so the second would silently hide the first)."""
    folders: dict[str, list[str]] = {}
    for run, run_dir in zip(runs, run_dirs, strict=True):
        folders.setdefault(run["run"]["name"], []).append(str(Path(run_dir) / RESULTS_FILE))
    for name, found in folders.items():
        if len(found) > 1:
            raise SafeEraserError(
                f"{found[1]}: run name '{name}' is also the run of {found[0]}; a report shows each run name once "
                "(evaluate one of them under another run_name)"
            )


def robustness_plot_path(out_path: str | Path) -> Path:
    """Where the Robustness section's plot goes: ``report.md`` -> ``report_robustness.png`` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}_robustness.png")


def write_report(
    run_dirs: Sequence[str | Path], out_path: str | Path, relearn_studies: Sequence[dict[str, Any]] = ()
) -> Path:
    """Write ``out_path`` (Markdown) and, beside it, ``<stem>.png`` (and ``<stem>_robustness.png`` when there is
    a Robustness section; ``relearn_studies``: relearn.json documents for its relearned column); returns the
    report path."""
    if not run_dirs:
        raise SafeEraserError("no run folders given for the report")
    runs = [{**load_run_results(run_dir), "specificity": load_specificity(run_dir)} for run_dir in run_dirs]
    check_unique_names(runs, run_dirs)
    out_path = Path(out_path)
    plot_path = out_path.with_suffix(".png")
    plotted = plot_runs(runs, plot_path)
    robustness = collect(runs, relearn_studies)
    robust_path = robustness_plot_path(out_path)
    robust_plotted = plot_robustness(robustness, robust_path)
    text = render_report(
        runs, plot_path.name if plotted else None, robustness, robust_path.name if robust_plotted else None
    )
    write_text_atomic(out_path, text)
    return out_path
