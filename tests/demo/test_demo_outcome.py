"""The demo's statistics and outcome statement are computed from the measured numbers: checked on hand-made
per-seed summaries."""

from __future__ import annotations

import math

import pytest

from llamafactory_safeeraser.demo.outcome import describe_outcome
from llamafactory_safeeraser.demo.summary import SARR_CUT, aggregate, main_table, pd_table
from llamafactory_safeeraser.evaluation.seed_stats import mean_sd


def summary(sarr: float, asr_eff: float = 0.0, asr_gen: float = 0.0, rr_eff: float = 0.0) -> dict:
    return {"asr_eff": asr_eff, "asr_gen": asr_gen, "rr_eff": rr_eff, "rouge_l_recall": 0.5, "sarr": sarr}


def test_mean_and_sample_sd():
    stats = mean_sd([0.2, 0.4, None, 0.9])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.5)
    assert stats["sd"] == pytest.approx(math.sqrt(((0.3**2) + (0.1**2) + (0.4**2)) / 2))
    assert mean_sd([0.7]) == {"mean": 0.7, "sd": None, "n": 1}  # one value measures no spread
    assert mean_sd([None]) == {"mean": None, "sd": None, "n": 0}


def test_aggregate_over_seeds_with_the_pd_cut_per_seed():
    per_seed = {
        233: {"GA": summary(0.8), "GA+PD": summary(0.2)},  # a 75% cut
        234: {"GA": summary(0.5), "GA+PD": summary(0.25)},  # a 50% cut
        235: {"GA": summary(0.0), "GA+PD": summary(0.1)},  # nothing to cut: no value
    }
    results = aggregate(per_seed, [("GA", "GA+PD")])
    assert results["GA"]["sarr"]["mean"] == pytest.approx(1.3 / 3) and results["GA"]["sarr"]["n"] == 3
    assert results["GA+PD"][SARR_CUT] == {"mean": pytest.approx(0.625), "sd": pytest.approx(0.1767767), "n": 2}
    table = main_table(results)
    assert "| GA | 0.0 ± 0.0 | 0.0 ± 0.0 |" in table and "43.3 ± 40.4" in table
    assert "| GA | 43.3 ± 40.4 | 18.3 ± 7.6 | 62.5 ± 17.7 |" in pd_table(results, [("GA", "GA+PD")])


def results(**runs: list[dict]) -> dict:
    """run name -> its per-seed summaries, aggregated."""
    names = {name.replace("_PD", "+PD"): values for name, values in runs.items()}
    per_seed = {seed: {name: values[i] for name, values in names.items()} for i, seed in enumerate((233, 234, 235))}
    pairs = [(name, f"{name}+PD") for name in names if not name.endswith("+PD") and f"{name}+PD" in names]
    return describe_outcome(aggregate(per_seed, pairs), pairs)


def test_average_cut_is_over_the_methods_that_over_forgot():
    text = results(
        vanilla=[summary(0.0, asr_eff=1.0, asr_gen=1.0)] * 3,
        GA=[summary(0.8)] * 3,
        GA_PD=[summary(0.2)] * 3,  # a 75% cut
        NPO=[summary(0.5)] * 3,
        NPO_PD=[summary(0.25)] * 3,  # a 50% cut
        KL=[summary(0.0)] * 3,
        KL_PD=[summary(0.0)] * 3,  # nothing to cut: excluded from the average
    )
    assert "The vanilla model complies" in text
    assert "**Adding PD cut SARR by 62.5% on average** (of the means) over the 2 methods that over-forgot" in text
    assert "forget quality held for 2 of them. The direction reproduces" in text
    assert "- KL: no over-forgetting to cut" in text


def test_a_pd_that_raises_sarr_or_asr_is_reported_as_such():
    text = results(GA=[summary(0.4)] * 3, GA_PD=[summary(0.6, asr_eff=0.3)] * 3)
    assert "GA: PD did not lower SARR 40.0 ± 0.0 -> 60.0 ± 0.0 (50% higher)" in text
    assert "(forget quality did NOT hold)" in text
    assert "The direction does NOT reproduce" in text


def test_a_difference_within_the_spread_is_called_unclear():
    text = results(GA=[summary(0.9), summary(0.1), summary(0.5)], GA_PD=[summary(0.6), summary(0.0), summary(0.3)])
    assert "within the spread over seeds, so unclear" in text
    assert "For GA the spread over seeds is as large as the difference." in text


def test_the_paper_headline_row_for_a_refusal_method():
    refusing = dict(rr_eff=0.98)
    cured = results(
        PO=[summary(0.7, **refusing), summary(0.8, **refusing), summary(0.6, **refusing)],
        PO_PD=[summary(0.1, **refusing), summary(0.2, **refusing), summary(0.0, **refusing)],
    )
    assert "PO reproduces the paper's headline row" in cured and "PD cuts that over-refusal by 86%" in cured
    assert "varies by seed" not in cured  # 70 ± 10 -> 10 ± 10: a clear difference
    seed_dependent = results(
        PO=[summary(0.27, **refusing), summary(0.82, **refusing), summary(0.01, **refusing)],
        PO_PD=[summary(0.0, **refusing)] * 3,
    )
    assert "PO reproduces the paper's headline row" in seed_dependent
    assert "How much it over-refuses varies by seed as much as the cut itself." in seed_dependent
    not_cured = results(PO=[summary(0.0, **refusing)] * 3, PO_PD=[summary(0.0, **refusing)] * 3)
    assert "PO does not reproduce the paper's over-refusal row here" in not_cured
    refusals_lost = results(PO=[summary(0.7, **refusing)] * 3, PO_PD=[summary(0.1, rr_eff=0.5)] * 3)
    assert "PO does not reproduce" in refusals_lost and "forget quality did NOT hold" in refusals_lost
