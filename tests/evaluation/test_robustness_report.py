"""report.md's Robustness section and its plot, from hand-made results.json files in the attack and quantization
layout (``attacks.<attack>.<kind>``; runs ``R@int8``/``R@int4``) and relearn.json studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_report import results, write_runs

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.report import write_report
from llamafactory_safeeraser.evaluation.results import quantized_name, quantized_of
from llamafactory_safeeraser.evaluation.robustness import collect, section
from llamafactory_safeeraser.evaluation.robustness_plot import build_robustness_figure
from llamafactory_safeeraser.lmeval_task import metric_catalog
from llamafactory_safeeraser.relearn.report import RELEARN_FILE, RELEARN_FORMAT, load_relearn_outputs


def attack(family: str, **kinds: dict[str, float | None]) -> dict:
    """One attack's results.json entry: kind -> its metrics (as the attacks' results.py writes them)."""
    return {
        kind: {"task": f"safeeraser_attack_x_{kind}", "family": family, "n": 8, "metrics": metrics, "stderr": {}}
        for kind, metrics in kinds.items()
    }


def run(name: str, seed: int, asr_eff: float | None, attacks: dict | None = None, sarr: float | None = 0.5) -> dict:
    found = results(name, asr_eff, sarr)
    found["settings"]["seed"] = seed
    if attacks is not None:
        found["attacks"] = attacks
    return found


def cell(values: list[float]) -> str:
    """The expected cell, computed here with numpy (sample sd), not with seed_stats."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"


# Seed 233 and seed 234 ran different sets of runs and attacks (GA@int4, NPO only on 233; NPO+PD only on 234).
SEED_233 = [
    run(
        "GA",
        233,
        0.1,
        {
            "typographic_alone": attack("typographic", efficacy={"asr": 0.6, "rr": 0.25}, generality={"asr": 0.7}),
            "typographic_beside": attack("typographic", efficacy={"asr": 0.2, "rr": 0.75}),
            "crop": attack("image", efficacy={"asr": 0.3}, sarr={"sarr": 0.5}),
            "noise": attack("image", efficacy={"asr": None}, sarr={"sarr": 0.3}),  # every judge query failed
        },
    ),
    run("GA+PD", 233, 0.2, {"role_play": attack("jailbreak", efficacy={"asr": 1.0})}, sarr=0.1),
    run("NPO", 233, 0.2),
    run(quantized_name("GA", 8), 233, 0.5),
    run(quantized_name("GA", 4), 233, 0.9),
]
SEED_234 = [
    run(
        "GA",
        234,
        0.3,
        {
            "typographic_alone": attack("typographic", efficacy={"asr": 0.1, "rr": 0.5}),
            "crop": attack("image", efficacy={"asr": 0.5}, sarr={"sarr": 0.8}),
        },
    ),
    run("GA+PD", 234, 0.4, sarr=0.3),
    run("NPO+PD", 234, 0.05),
    run(quantized_name("GA", 8), 234, 0.7),
]


def study(name: str, last: list[dict]) -> dict:
    """A relearn.json study: per seed, step 0 and the last step's summary."""
    seeds = [
        {"seed": seed, "points": [{"steps": 0, "summary": {"asr_eff": 0.1}}, {"steps": 8, "summary": summary}]}
        for seed, summary in zip((1, 2), last, strict=False)
    ]
    return {"format": RELEARN_FORMAT, "run": {"name": name, "model": "/m", "adapter": None}, "seeds": seeds}


RELEARNED = [study("GA", [{"asr_eff": 0.9, "rr_eff": 0.25}, {"asr_eff": 0.5}]), study("vanilla", [{"asr_eff": 1.0}])]


def lines_of(runs: list[dict], studies: list[dict] = ()) -> list[str]:
    return section(collect(runs, studies))


def table(lines: list[str], title: str) -> list[str]:
    """The rows of the table under heading ``title``."""
    start = lines.index(title) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_quantized_run_names() -> None:
    assert quantized_of("NPO+PD@int4") == ("NPO+PD", 4) and quantized_of("GA") == ("GA", None)
    assert quantized_of(quantized_name("PO@x", 8)) == ("PO@x", 8)


def test_cells_are_mean_and_sd_over_seeds_of_the_family_means() -> None:
    lines = lines_of(SEED_233 + SEED_234, RELEARNED)
    asr = table(lines, "### ASR on the forget set (efficacy) ↓")
    assert asr[0] == "| Run | plain | typographic | image | jailbreak | int8 | int4 | relearned |"
    # typographic: seed 233 (0.6 + 0.2) / 2, seed 234 0.1; image: seed 233 crop only (noise not measured), 234 crop
    assert asr[2] == (
        f"| GA | {cell([0.1, 0.3])} | {cell([0.4, 0.1])} | {cell([0.3, 0.5])} | - | {cell([0.5, 0.7])} | 90.0 "
        f"| {cell([0.9, 0.5])} |"
    )
    assert asr[2] == "| GA | 20.0 ± 14.1 | 25.0 ± 21.2 | 40.0 ± 14.1 | - | 60.0 ± 14.1 | 90.0 | 70.0 ± 28.3 |"
    assert asr[3] == "| GA+PD | 30.0 ± 14.1 | - | - | 100.0 | - | - | - |"  # jailbreak on seed 233 only
    # NPO and NPO+PD were scored plain only: the main table has them, the section leaves them out
    assert not any(row.startswith(("| NPO |", "| NPO+PD |")) for row in asr)
    assert asr[4] == "| vanilla | - | - | - | - | - | - | 100.0 |"  # relearned, never evaluated here
    rr = table(lines, "### RR on the forget set (efficacy) ↑")
    assert rr[2] == f"| GA | 50.0 ± 0.0 | {cell([0.5, 0.5])} | - | - | 50.0 ± 0.0 | 50.0 | 25.0 |"
    gen = table(lines, "### ASR on unseen data (generality) ↓")
    assert gen[2] == "| GA | 25.0 ± 0.0 | 70.0 | - | - | 25.0 ± 0.0 | 25.0 | - |"  # generality: seed 233 only
    sarr = table(lines, "### SARR (benign image + harmful question) ↓")
    assert sarr[2] == f"| GA | 50.0 ± 0.0 | - | {cell([0.4, 0.8])} | - | 50.0 ± 0.0 | 50.0 | - |"
    assert sarr[3] == f"| GA+PD | {cell([0.1, 0.3])} | - | - | - | - | - | - |"
    assert lines[1] == "## Robustness" and "Relearning steps: 8." in lines[3]


def test_per_attack_tables_list_each_measured_attack() -> None:
    lines = lines_of(SEED_233 + SEED_234)
    asr = table(lines, "#### ASR on the forget set (efficacy) ↓")
    # families in order of appearance; noise measured no ASR, so it has no column here
    assert asr[0] == "| Run | typographic_alone (typographic) | typographic_beside (typographic) | crop (image) | " \
        "role_play (jailbreak) |"  # fmt: skip
    assert asr[2] == f"| GA | {cell([0.6, 0.1])} | 20.0 | {cell([0.3, 0.5])} | - |"
    assert asr[3] == "| GA+PD | - | - | - | 100.0 |"
    assert len(asr) == 4  # runs without attack results have no row
    sarr = table(lines, "#### SARR (benign image + harmful question) ↓")
    assert sarr[:1] + sarr[2:] == [
        "| Run | crop (image) | noise (image) |",
        f"| GA | {cell([0.5, 0.8])} | 30.0 |",
        "| GA+PD | - | - |",
    ]


def test_no_section_without_attacks_quantization_or_relearning() -> None:
    assert lines_of([run("GA", 233, 0.1), run("GA+PD", 233, 0.2)]) == []
    assert "## Robustness" in lines_of([run("GA", 233, 0.1)], [study("GA", [{"asr_eff": 0.4}])])


def test_a_run_given_twice_for_one_seed_is_refused() -> None:
    with pytest.raises(SafeEraserError, match=r"^run 'GA' of seed 233 is given twice \(results 1 and 2\)"):
        collect([run("GA", 233, 0.1), run("GA", 233, 0.2)])


def test_report_has_the_section_and_its_plot(tmp_path: Path) -> None:
    folders = write_runs(tmp_path / "runs", SEED_233)
    report = write_report(folders, tmp_path / "out" / "report.md", [RELEARNED[0]]).read_text()
    assert "## Robustness" in report and "![robustness per run: plain and attacked](report_robustness.png)" in report
    assert "| GA | 10.0 | 40.0 | 30.0 | - | 50.0 | 90.0 | 70.0 ± 28.3 |" in report  # one seed: means alone
    assert "| GA@int8 |" in report  # the quantized runs keep their rows in the main table
    assert (tmp_path / "out" / "report_robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert report.index("## Effect of prompt decouple") < report.index("## Robustness") < report.index("## Per cat")
    plain = write_report(write_runs(tmp_path / "plain", [run("GA", 233, 0.1)]), tmp_path / "p.md").read_text()
    assert "Robustness" not in plain and not (tmp_path / "p_robustness.png").exists()


def test_the_main_plot_keeps_the_full_precision_bars() -> None:
    from llamafactory_safeeraser.evaluation.plot import method_groups

    groups = dict(method_groups(SEED_233))
    assert groups["GA"][False]["asr_eff"] == 0.1  # not GA@int8's 0.5 or GA@int4's 0.9
    assert sorted(groups) == ["GA", "NPO"] and sorted(groups["GA"]) == [False, True]


def test_plot_has_a_panel_per_column_and_a_bar_per_measured_cell() -> None:
    import matplotlib.pyplot as plt

    figure = build_robustness_figure(collect(SEED_233 + SEED_234, RELEARNED))
    try:
        titles = [ax.get_title(loc="left") for ax in figure.axes]
        assert titles == [f"{h.column.robustness} {h.metric.arrow}" for h in metric_catalog.robustness_columns()]
        asr_panel = figure.axes[0]
        heights = sorted(round(p.get_height(), 6) for p in asr_panel.patches)
        # GA: 6 measured cells (no jailbreak); GA+PD: plain, jailbreak; vanilla: relearned; NPO and NPO+PD,
        # scored plain only, are the main plot's
        assert heights == sorted([20.0, 25.0, 40.0, 60.0, 90.0, 70.0, 30.0, 100.0, 100.0])
        assert [t.get_text() for t in figure.legends[0].get_texts()] == [
            "plain", "typographic", "image", "jailbreak", "int8", "int4", "relearned",
        ]  # fmt: skip
        assert [t.get_text() for t in figure.axes[-1].get_xticklabels()] == ["GA", "GA+PD", "vanilla"]
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        texts = [figure._suptitle, *figure.legends[0].get_texts(), *figure.axes[-1].get_xticklabels()]
        texts += [ax.title for ax in figure.axes]
        boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
        assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    finally:
        plt.close(figure)


def test_relearn_outputs_are_read_from_an_output_folder_or_its_run_folders(tmp_path: Path) -> None:
    for document in RELEARNED:
        (tmp_path / "out" / document["run"]["name"]).mkdir(parents=True)
        (tmp_path / "out" / document["run"]["name"] / RELEARN_FILE).write_text(json.dumps(document))
    assert [s["run"]["name"] for s in load_relearn_outputs([tmp_path / "out"])] == ["GA", "vanilla"]
    assert [s["run"]["name"] for s in load_relearn_outputs([tmp_path / "out" / "vanilla"])] == ["vanilla"]
    with pytest.raises(SafeEraserError, match=r"empty: no relearn.json in it or its folders"):
        load_relearn_outputs([tmp_path / "empty"])


def test_docs_hold_the_declared_columns() -> None:
    from conftest import REPO

    from llamafactory_safeeraser.evaluation.robustness import columns_table

    marker = "<!-- robustness columns: generated by `python -m llamafactory_safeeraser.evaluation.robustness` -->\n"
    text = (REPO / "docs/evaluation.md").read_text(encoding="utf-8")
    assert text.split(marker, 1)[1].startswith(columns_table() + "\n\n")
    for column in metric_catalog.robustness_columns():
        assert f"{column.column.robustness} {column.metric.arrow}" in text
