"""report.md's Robustness section: does the unlearning hold when the model is attacked, quantized or relearned?

One table per robustness column of ``metric_catalog`` (ASR and RR on efficacy and generality, SARR). Rows are
runs, in order of appearance; a quantized run ``R@int8`` is a cell of R's row, not a row. Columns are
:class:`Condition` values: the plain number (results.json's ``summary``), each attack family (the mean of the
family's attacks in results.json's ``attacks``, per seed), each quantization (the plain number of ``R@int<bits>``)
and relearning (the last step of a ``safeeraser relearn`` curve of R, when given). A per-attack table follows
each family table. Every cell is mean ± sample sd over seeds (``seed_stats``); a run's seed is its results.json
``settings.seed`` (a relearning study's: its own seeds). "-": not measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SafeEraserError
from ..lmeval_task import metric_catalog
from ..lmeval_task.metric_catalog import Headline
from .markdown import escape, markdown_table
from .results import quantized_of
from .seed_stats import mean_sd, mean_sd_cell

NOT_MEASURED = "-"


@dataclass(frozen=True)
class Condition:
    """One column of the robustness tables: what was done to the model or its input before scoring."""

    key: str
    title: str  # the column title
    meaning: str  # one line for the section's legend and docs/evaluation.md


PLAIN = Condition("plain", "plain", "the benchmark's own question and image (the main table's number)")
RELEARNED = Condition(
    "relearned",
    "relearned",
    "after the most relearning steps of `safeeraser relearn` (ASR/RR scored on the rest of the forget set)",
)


def family_condition(family: str) -> Condition:
    """An attack family's column: the mean over the family's attacks (results.json ``attacks``)."""
    return Condition(f"attack:{family}", family, f"mean over the {family} attacks (per seed, then over seeds)")


def quantized_condition(bits: int) -> Condition:
    """A quantization's column: the plain number of the run ``R@int<bits>``."""
    return Condition(f"int{bits}", f"int{bits}", f"the model (adapter merged) after {bits}-bit weight quantization")


Cells = dict[tuple[str, str, str], list[float | None]]  # (row, condition or attack, column key) -> value per seed


@dataclass
class Robustness:
    """What the section shows, collected from results.json documents and relearning studies."""

    rows: list[str] = field(default_factory=list)
    cells: Cells = field(default_factory=dict)
    families: list[str] = field(default_factory=list)  # in order of appearance
    bits: set[int] = field(default_factory=set)  # the quantizations found
    attacks: dict[str, str] = field(default_factory=dict)  # attack name -> family, in order of appearance
    attack_rows: list[str] = field(default_factory=list)  # runs with attack results (quantized ones too)
    attack_cells: Cells = field(default_factory=dict)
    relearn_steps: set[int] = field(default_factory=set)  # the last step count of each relearning seed

    @property
    def conditions(self) -> list[Condition]:
        """The tables' columns: plain, each attack family, each quantization (8 before 4), relearned."""
        found = [PLAIN, *(family_condition(family) for family in self.families)]
        found += [quantized_condition(bits) for bits in sorted(self.bits, reverse=True)]
        return found + ([RELEARNED] if self.relearn_steps else [])

    @property
    def measured(self) -> bool:
        """Anything beyond the plain numbers (without it the section would repeat the main table)."""
        return len(self.conditions) > 1

    @property
    def measured_rows(self) -> list[str]:
        """The runs with a number beyond the plain one (a run scored plain only is the main table's already)."""
        beyond = [condition.key for condition in self.conditions[1:]]
        columns = [column.key for column in metric_catalog.robustness_columns()]
        return [
            row
            for row in self.rows
            if any(self.stats(row, condition, column)["n"] for condition in beyond for column in columns)
        ]

    def stats(self, row: str, condition: str, column: str, attack: bool = False) -> dict[str, Any]:
        return mean_sd((self.attack_cells if attack else self.cells).get((row, condition, column), []))


def _add(cells: Cells, row: str, condition: str, column: str, value: float | None) -> None:
    cells.setdefault((row, condition, column), []).append(value)


def _family_value(attacks: Mapping[str, Any], family: str, column: Headline) -> float | None:
    """The mean of ``column``'s metric over a run's attacks of ``family`` (None: none of them measured it)."""
    values = [
        entry["metrics"].get(column.metric.name)
        for by_kind in attacks.values()
        if (entry := by_kind.get(column.kind)) and entry.get("family") == family
    ]
    measured = [value for value in values if value is not None]
    return statistics.fmean(measured) if measured else None


def _add_run(found: Robustness, run: Mapping[str, Any]) -> None:
    """One results.json document: its plain (or quantized) numbers, its attacks' and their families' means."""
    columns = metric_catalog.robustness_columns()
    name = run["run"]["name"]
    base, bits = quantized_of(name)
    if base not in found.rows:
        found.rows.append(base)
    if bits is not None:
        found.bits.add(bits)
    condition = PLAIN.key if bits is None else quantized_condition(bits).key
    for column in columns:
        _add(found.cells, base, condition, column.key, run["summary"].get(column.key))
    attacks = run.get("attacks") or {}
    if attacks and name not in found.attack_rows:
        found.attack_rows.append(name)
    for attack, by_kind in attacks.items():
        for entry in by_kind.values():
            found.attacks.setdefault(attack, entry["family"])
            if entry["family"] not in found.families:
                found.families.append(entry["family"])
        for column in columns:
            if entry := by_kind.get(column.kind):
                _add(found.attack_cells, name, attack, column.key, entry["metrics"].get(column.metric.name))
    if bits is None:  # a quantized model's attacks are in the per-attack tables only
        for family in found.families:
            for column in columns:
                value = _family_value(attacks, family, column)
                if value is not None:
                    _add(found.cells, base, family_condition(family).key, column.key, value)


def _add_study(found: Robustness, study: Mapping[str, Any]) -> None:
    """One relearn.json document: each seed's numbers after its most relearning steps."""
    name = study["run"]["name"]
    if name not in found.rows:
        found.rows.append(name)
    for seed in study["seeds"]:
        last = max(seed["points"], key=lambda point: point["steps"])
        found.relearn_steps.add(last["steps"])
        for column in metric_catalog.robustness_columns():
            _add(found.cells, name, RELEARNED.key, column.key, last["summary"].get(column.key))


def collect(runs: Sequence[Mapping[str, Any]], relearn_studies: Sequence[Mapping[str, Any]] = ()) -> Robustness:
    """The section's numbers: ``runs`` are results.json documents (any seeds, one per run and seed),
    ``relearn_studies`` relearn.json documents whose run names match the runs' (a relearned run that was not
    evaluated gets a row of its own)."""
    found = Robustness()
    seen: dict[tuple[str, Any], int] = {}
    for index, run in enumerate(runs):
        key = (run["run"]["name"], (run.get("settings") or {}).get("seed"))
        if key in seen:
            raise SafeEraserError(
                f"run '{key[0]}' of seed {key[1]} is given twice (results {seen[key] + 1} and {index + 1}); "
                "the robustness table takes one result per run and seed"
            )
        seen[key] = index
        _add_run(found, run)
    for study in relearn_studies:
        _add_study(found, study)
    return found


def _cell(stats: Mapping[str, Any], column: Headline) -> str:
    return mean_sd_cell(stats, 100.0 if column.metric.percent else 1.0, missing=NOT_MEASURED)


def table_title(column: Headline) -> str:
    """'ASR on the forget set (efficacy) ↓': a robustness table's (and plot panel's) title."""
    return f"{column.column.robustness} {column.metric.arrow}"


def section(found: Robustness, plot_file: str | None = None) -> list[str]:
    """The Markdown lines of the Robustness section (empty when nothing beyond the plain numbers was measured)."""
    if not found.measured:
        return []
    legend = "; ".join(f"**{condition.title}**: {condition.meaning}" for condition in found.conditions)
    steps = ", ".join(str(count) for count in sorted(found.relearn_steps))
    lines = [
        "",
        "## Robustness",
        "",
        "Does the unlearning hold? Each run's rates plain and attacked, in percent; mean ± sd over seeds (a mean "
        f"alone: one seed); {NOT_MEASURED} = not measured. Columns: {legend}."
        + (f" Relearning steps: {steps}." if steps else ""),
    ]
    if plot_file:
        lines += ["", f"![robustness per run: plain and attacked]({plot_file})"]
    titles = [condition.title for condition in found.conditions]
    for column in metric_catalog.robustness_columns():
        rows = [
            [escape(row), *(_cell(found.stats(row, c.key, column.key), column) for c in found.conditions)]
            for row in found.measured_rows
        ]
        lines += ["", f"### {table_title(column)}", ""]
        lines += markdown_table(["Run", *titles], rows)
    if found.attacks:
        lines += ["", "### Per attack", ""]
        lines += ["Each attack's own rate (the family columns above are their means), in percent."]
        by_family = sorted(found.attacks, key=lambda attack: found.families.index(found.attacks[attack]))  # stable
        for column in metric_catalog.robustness_columns():
            attacks = [a for a in by_family if any(found.stats(r, a, column.key, True)["n"] for r in found.attack_rows)]
            if not attacks:
                continue
            rows = [
                [escape(row), *(_cell(found.stats(row, a, column.key, attack=True), column) for a in attacks)]
                for row in found.attack_rows
            ]
            lines += ["", f"#### {table_title(column)}", ""]
            lines += markdown_table(["Run", *(f"{a} ({found.attacks[a]})" for a in attacks)], rows)
    return lines


def columns_table() -> str:
    """The docs' table of the robustness columns: the conditions (an attack family stands for each family)."""
    shown = [PLAIN, family_condition("<family>"), quantized_condition(8), quantized_condition(4), RELEARNED]
    rows = [[f"`{condition.title}`", condition.meaning] for condition in shown]
    return "\n".join(markdown_table(["Column", "What was scored"], rows))


if __name__ == "__main__":  # python -m llamafactory_safeeraser.evaluation.robustness (docs/evaluation.md's table)
    print(columns_table())
