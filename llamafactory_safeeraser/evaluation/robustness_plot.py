"""The Robustness section's plot: one panel per robustness column, runs on the x axis, one bar per condition
(plain, each attack family, each quantization, relearned), error bars the sd over seeds, "-" where a cell was
not measured. Its runs are the tables' runs: those measured beyond the plain number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lmeval_task import metric_catalog
from .plot import write_figure
from .robustness import NOT_MEASURED, PLAIN, Robustness, table_title

PLAIN_COLOUR = "#4d4d4d"
GROUP_WIDTH = 0.8  # the share of a run's slot its bars take


def build_robustness_figure(found: Robustness) -> Any:
    """The matplotlib figure, or None when the section has nothing to show."""
    if not found.measured:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    columns = metric_catalog.robustness_columns()
    conditions = found.conditions
    rows = found.measured_rows
    palette = plt.get_cmap("tab10").colors
    colours = [PLAIN_COLOUR if c == PLAIN else palette[i % len(palette)] for i, c in enumerate(conditions)]
    bar = GROUP_WIDTH / len(conditions)
    width = max(7.0, len(rows) * (0.25 * len(conditions) + 0.4) + 1.5)
    figure, axes = plt.subplots(
        len(columns), 1, sharex=True, figsize=(width, 2.4 * len(columns) + 1), dpi=110, squeeze=False
    )
    axes = axes[:, 0]
    for ax, column in zip(axes, columns, strict=True):
        scale = 100 if column.metric.percent else 1
        measured = False
        for offset, (condition, colour) in enumerate(zip(conditions, colours, strict=True)):
            for index, row in enumerate(rows):
                x = index - GROUP_WIDTH / 2 + bar * (offset + 0.5)
                stats = found.stats(row, condition.key, column.key)
                if stats["mean"] is None:  # a mark, so that "not measured" does not read as a 0 bar
                    ax.text(x, 0.5, NOT_MEASURED, ha="center", va="bottom", fontsize=6, color="darkgray")
                    continue
                measured = True
                ax.bar(x, scale * stats["mean"], bar, color=colour)
                if stats["sd"] is not None:  # one seed: no spread to show
                    ax.errorbar(x, scale * stats["mean"], yerr=scale * stats["sd"], fmt="none", ecolor="black",
                                elinewidth=0.8, capsize=2)  # fmt: skip
        if not measured:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="dimgray")
        ax.set_title(table_title(column), fontsize=9, loc="left")
        if column.metric.percent:
            ax.set_ylim(0, 105)
            ax.set_yticks([0, 25, 50, 75, 100])
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    long_names = max(len(row) for row in rows) > 9
    axes[-1].set_xticks(range(len(rows)))
    axes[-1].set_xticklabels(rows, fontsize=8, rotation=30 if long_names else 0, ha="right" if long_names else "center")
    axes[-1].set_xlim(-0.6, len(rows) - 0.4)
    figure.suptitle(
        f"Robustness per run: plain and attacked (%, mean ± sd over seeds; {NOT_MEASURED} not measured)",
        fontsize=10,
        y=0.995,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in colours]
    figure.legend(handles, [c.title for c in conditions], loc="upper center", bbox_to_anchor=(0.5, 0.975),
                  ncol=min(len(conditions), 8), frameon=False, fontsize=8)  # fmt: skip
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    return figure


def plot_robustness(found: Robustness, path: str | Path) -> bool:
    """Write the plot as a PNG; False (and no file) when there is nothing to plot."""
    figure = build_robustness_figure(found)
    if figure is None:
        return False
    write_figure(figure, path)
    return True
