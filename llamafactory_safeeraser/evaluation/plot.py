"""The report's plot: per method, the run without PD and the run with PD side by side, one panel per plotted
headline column (``metric_catalog``: over-forgetting, forget efficacy, utility), every bar labelled with its value."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fileio import write_bytes_atomic
from ..lmeval_task import metric_catalog
from ..lmeval_task.metric_catalog import Headline
from .results import method_of, quantized_of

VARIANTS = ((False, "without PD", "#9e9e9e"), (True, "with PD", "#1f77b4"))  # (with PD, legend, colour)
BAR_WIDTH = 0.38
LABEL_SIZE = 7


def panel_title(column: Headline) -> str:
    """'Forget efficacy: ASR on the forget set (%), lower is better'."""
    _, title = column.column.plot_panel  # type: ignore[misc]
    unit = " (%)" if column.metric.percent else ""
    return f"{title}{unit}, {'higher' if column.metric.higher_is_better else 'lower'} is better"


def plot_title() -> str:
    """'SARR, ASR and ROUGE-L per method, without and with prompt decouple (PD)': the panels' metrics."""
    labels = list(dict.fromkeys(column.metric.label for column in metric_catalog.plot_panels()))
    named = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return f"{named} per method, without and with prompt decouple (PD)"


def method_groups(runs: Sequence[dict[str, Any]]) -> list[tuple[str, dict[bool, dict[str, Any]]]]:
    """Runs grouped by method in order of appearance: method -> {with PD: summary}. Quantized runs (``GA@int4``)
    are left out: their method is their base run's, whose bar they would replace (the Robustness plot has them)."""
    groups: dict[str, dict[bool, dict[str, Any]]] = {}
    for run in runs:
        if quantized_of(run["run"]["name"])[1] is not None:
            continue
        method, with_pd = method_of(run["run"]["name"])
        groups.setdefault(method, {})[with_pd] = run["summary"]
    return list(groups.items())


def _draw_panel(ax: Any, groups: list[tuple[str, dict[bool, dict[str, Any]]]], column: Headline) -> None:
    """One metric: a pair of bars per method (a lone run centred), each labelled with its value; n/a if missing."""
    key, scale = column.key, 100 if column.metric.percent else 1
    for index, (_, variants) in enumerate(groups):
        for with_pd, legend, colour in VARIANTS:
            if with_pd not in variants:
                continue
            x = index + (BAR_WIDTH / 2) * (1 if with_pd else -1) if len(variants) == 2 else index
            value = variants[with_pd].get(key)
            if value is None:
                ax.text(x, 1, "n/a", ha="center", va="bottom", fontsize=LABEL_SIZE, color="dimgray")
                continue
            bars = ax.bar(x, scale * value, BAR_WIDTH, color=colour, label=legend)
            ax.bar_label(bars, labels=[f"{scale * value:.0f}" if scale > 1 else f"{value:.3g}"], padding=1,
                         fontsize=LABEL_SIZE)  # fmt: skip
    ax.set_title(panel_title(column), fontsize=9, loc="left")
    if column.metric.percent:
        ax.set_ylim(0, 112)  # room for the value label above a 100% bar
        ax.set_yticks([0, 25, 50, 75, 100])
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def build_figure(runs: Sequence[dict[str, Any]]) -> Any:
    """The matplotlib figure of :func:`plot_runs`, or None when no run has any of the plotted numbers."""
    groups = method_groups(runs)
    panels = metric_catalog.plot_panels()
    summaries = [summary for _, variants in groups for summary in variants.values()]
    if all(summary.get(column.key) is None for summary in summaries for column in panels):
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = [method for method, _ in groups]
    long_names = max(len(name) for name in names) > 9
    width = max(6.4, 0.9 * len(groups) + 1.6)  # about an inch per method, so labels never crowd
    height = 8.0 * len(panels) / 3  # 8 inches for the three panels of the paper's claims
    figure, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(width, height), dpi=120, squeeze=False)
    axes = axes[:, 0]
    for ax, column in zip(axes, panels, strict=True):
        _draw_panel(ax, groups, column)
    axes[-1].set_xticks(range(len(names)))
    axes[-1].set_xticklabels(
        names, fontsize=8, rotation=30 if long_names else 0, ha="right" if long_names else "center"
    )
    axes[-1].set_xlim(-0.6, len(names) - 0.4)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    shown = [label for _, label, _ in VARIANTS if label in handles]
    figure.suptitle(plot_title(), fontsize=10, y=0.995)
    figure.legend([handles[label] for label in shown], shown, loc="upper center", bbox_to_anchor=(0.5, 0.97),
                  ncol=2, frameon=False, fontsize=8)  # fmt: skip
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    return figure


def plot_runs(runs: Sequence[dict[str, Any]], path: str | Path) -> bool:
    """Write the plot as a PNG; False (and no file) when there is nothing to plot."""
    figure = build_figure(runs)
    if figure is None:
        return False
    write_figure(figure, path)
    return True


def write_figure(figure: Any, path: str | Path) -> None:
    """A matplotlib figure as a PNG file (written atomically); the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
