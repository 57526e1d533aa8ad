"""``report.md`` and ``report.png`` of relearning runs: a recovery curve (ASR vs relearning steps) per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..evaluation.markdown import markdown_table
from ..evaluation.plot import write_figure
from ..evaluation.seed_stats import mean_sd_cell
from ..fileio import read_json_document, write_text_atomic
from ..lmeval_task import metric_catalog

RELEARN_FILE = "relearn.json"
RELEARN_FORMAT = "safeeraser-relearn/1"


def columns() -> dict[str, str]:
    """Curve metric -> column title: the main table's headline columns, in the order of the task kinds (ASR/RR
    are scored on the rest of the forget set, efficacy, and on all_val.json, generality)."""
    found = metric_catalog.by_task_kind(metric_catalog.main_table())
    return {h.key: f"{h.column.relearn_title or h.column.title} {h.metric.arrow}" for h in found}


def plotted() -> list[tuple[str, str]]:
    """(curve metric, panel title) of the relearning plot."""
    found = [h for h in metric_catalog.headline() if h.column.relearn_plot]
    return [(h.key, f"{h.column.relearn_plot}{' (%)' if h.metric.percent else ''}") for h in found]


def find_relearn_folders(out_dir: str | Path) -> list[Path]:
    """Run folders (holding relearn.json) directly under ``out_dir``, by name."""
    return sorted(path.parent for path in Path(out_dir).glob(f"*/{RELEARN_FILE}"))


def load_relearn(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / RELEARN_FILE
    return read_json_document(path, RELEARN_FORMAT, "a relearning result")


def load_relearn_outputs(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The studies of ``safeeraser relearn`` output folders (every run folder in each) or of run folders."""
    studies = []
    for folder in map(Path, folders):
        runs = [folder] if (folder / RELEARN_FILE).is_file() else find_relearn_folders(folder)
        if not runs:
            raise SafeEraserError(f"{folder}: no {RELEARN_FILE} in it or its folders (a `safeeraser relearn` output?)")
        studies += [load_relearn(run) for run in runs]
    return studies


def recovery(study: dict[str, Any], metric: str = "asr_eff") -> tuple[float, float] | None:
    """(mean before relearning, mean after the most steps) of ``metric``, or None if not measured."""
    first, last = study["curve"][0]["metrics"].get(metric), study["curve"][-1]["metrics"].get(metric)
    return None if first is None or last is None else (first["mean"], last["mean"])


def recovery_table(studies: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run: ASR before and after the most relearning steps (the report's summary table)."""
    rows = []
    for study in studies:
        eff, gen = recovery(study, "asr_eff"), recovery(study, "asr_gen")
        rows.append(
            [
                study["run"]["name"],
                str(len(study["seeds"])),
                str(study["curve"][-1]["steps"]),
                "n/a" if eff is None else f"{100 * eff[0]:.1f} → {100 * eff[1]:.1f} ({100 * (eff[1] - eff[0]):+.1f})",
                "n/a" if gen is None else f"{100 * gen[0]:.1f} → {100 * gen[1]:.1f} ({100 * (gen[1] - gen[0]):+.1f})",
            ]
        )
    header = ["Run", "Seeds", "Steps", "ASR eff: before → after (recovery)", "ASR gen: before → after"]
    return markdown_table(header, rows)


def render_report(studies: Sequence[dict[str, Any]], plot_file: str | None) -> str:
    lines = ["# Relearning: does the unlearning survive fine-tuning on part of the forget set?", ""]
    lines += [
        "Each run's unlearned model (its adapter merged into the base weights, as a released model) gets a new "
        "LoRA adapter trained with plain LLaMA-Factory SFT on a held share of the forget records; ASR and RR are "
        "then scored on the rest of the forget set (efficacy) and on all_val.json (generality). Rates in %, "
        "mean ± sample sd over the seeds. Recovery: ASR after the most steps minus ASR before relearning.",
        "",
    ]
    lines += recovery_table(studies)
    if plot_file:
        lines += ["", f"![recovery curves]({plot_file})"]
    titles = columns()
    for study in studies:
        metrics = [m for m in titles if any(m in point["metrics"] for point in study["curve"])]
        rows = [
            [str(point["steps"])] + [mean_sd_cell(point["metrics"].get(m)) for m in metrics] for point in study["curve"]
        ]
        settings = study["settings"]
        batch = f"{settings['batch_size']} × {settings['gradient_accumulation_steps']}"
        split = ", ".join(
            f"seed {s['seed']}: {len(s['relearn_records'])} records ({s['relearn_rows']} rows) relearned, "
            f"{len(s['scored_records'])} scored"
            for s in study["seeds"]
        )
        lines += ["", f"## {study['run']['name']}", ""]
        lines += [
            f"Model `{study['run']['model']}`, adapter `{study['run']['adapter'] or '-'}`; learning rate "
            f"{settings['learning_rate']:g}, batch {batch}, "
            f"LoRA rank {settings['lora_rank']}; {split}.",
            "",
        ]
        lines += markdown_table(["Relearning steps", *(titles[m] for m in metrics)], rows)
    return "\n".join(lines) + "\n"


def plot_curves(studies: Sequence[dict[str, Any]], path: str | Path) -> bool:
    """ASR against relearning steps, one line per run (error bars: sd over seeds). False if nothing to plot."""
    panels = plotted()
    if not any(point["metrics"].get(m) for study in studies for point in study["curve"] for m, _ in panels):
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(10, 4.2), dpi=120, sharey=True, squeeze=False)
    axes = axes[0]
    try:
        for ax, (metric, title) in zip(axes, panels, strict=True):
            for study in studies:
                points = [(p["steps"], p["metrics"][metric]) for p in study["curve"] if metric in p["metrics"]]
                if not points:
                    continue
                x = [steps for steps, _ in points]
                y = [100 * value["mean"] for _, value in points]
                err = [100 * (value["sd"] or 0.0) for _, value in points]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=study["run"]["name"])
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("relearning steps")
            ax.set_ylim(-5, 105)
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("ASR (%) - lower is safer")
        axes[-1].legend(fontsize=8, loc="best")
        figure.suptitle("Recovery under relearning (mean ± sd over seeds)", fontsize=10)
    except BaseException:
        plt.close(figure)
        raise
    write_figure(figure, path)
    return True


def pooled_study(studies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Studies of one run name on different seeds' models (the demo's) as one study: its curve over all seeds."""
    from .curve import aggregate

    seeds = [seed for study in studies for seed in study["seeds"]]
    return {**studies[0], "seeds": seeds, "curve": aggregate([seed["points"] for seed in seeds])}


def write_studies_report(studies: Sequence[dict[str, Any]], out_path: str | Path) -> Path:
    """Write ``out_path`` (Markdown) and, beside it, ``<stem>.png``; returns the report path."""
    if not studies:
        raise SafeEraserError("no relearning run folders given for the report")
    out_path = Path(out_path)
    plot_path = out_path.with_suffix(".png")
    plotted = plot_curves(studies, plot_path)
    write_text_atomic(out_path, render_report(studies, plot_path.name if plotted else None))
    return out_path


def write_relearn_report(run_dirs: Sequence[str | Path], out_path: str | Path) -> Path:
    """The report of the relearn.json files in ``run_dirs`` (see ``write_studies_report``)."""
    return write_studies_report([load_relearn(folder) for folder in run_dirs], out_path)
