"""The demo's outcome statement is computed from the measured numbers: checked on hand-made summaries."""

from __future__ import annotations

from llamafactory_safeeraser.demo import DemoSettings
from llamafactory_safeeraser.demo.outcome import describe_outcome


def run(name: str, sarr: float, asr_eff: float = 0.0, asr_gen: float = 0.0) -> dict:
    summary = {"asr_eff": asr_eff, "asr_gen": asr_gen, "rr_eff": 0.0, "rouge_l_recall": 0.5, "sarr": sarr}
    return {"run": {"name": name}, "summary": summary}


def outcome(*results: dict) -> str:
    return describe_outcome(list(results), DemoSettings(out_dir="unused"))


def test_average_cut_is_over_the_methods_that_over_forgot() -> None:
    text = outcome(
        run("vanilla", 0.0, asr_eff=1.0, asr_gen=1.0),
        run("GA", 0.80),
        run("GA+PD", 0.20),  # a 75% cut
        run("NPO", 0.50),
        run("NPO+PD", 0.25),  # a 50% cut
        run("KL", 0.0),
        run("KL+PD", 0.0),  # nothing to cut: excluded from the average
    )
    assert "The vanilla model complies" in text
    assert "**Adding PD cut SARR by 62.5% on average** over the 2 methods that over-forgot without it (GA, NPO;" in text
    assert "forget quality held for 2 of them. The direction reproduces" in text
    assert "KL did not over-forget at this scale, so it says nothing about PD here: its retain term" in text


def test_a_pd_that_raises_sarr_or_asr_is_reported_as_such() -> None:
    text = outcome(run("GA", 0.40), run("GA+PD", 0.60, asr_eff=0.30))
    assert "GA: PD did not lower SARR from 40.0% to 60.0% (50% higher)" in text
    assert "(forget quality did NOT hold)" in text
    assert "The direction does NOT reproduce" in text


def test_methods_with_the_same_reason_share_one_line() -> None:
    text = outcome(run("PO", 0.0), run("PO+PD", 0.0), run("IdkDPO", 0.0), run("IdkDPO+PD", 0.0))
    assert "No method over-forgot without PD at this scale" in text
    assert "PO and IdkDPO did not over-forget at this scale, so they say nothing about PD here: the tiny model" in text
