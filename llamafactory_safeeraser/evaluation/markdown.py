"""Markdown tables of the reports (evaluation, relearning, demo): one writer, one escaping rule."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: the header, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def escape(text: str) -> str:
    """A cell's text with its pipes escaped (a run name such as ``KL|x`` stays one cell)."""
    return text.replace("|", "\\|")


def percent(value: float | None) -> str:
    """A fraction in percent with one decimal; 'n/a' when nothing was measured."""
    return "n/a" if value is None else f"{100 * value:.1f}"
