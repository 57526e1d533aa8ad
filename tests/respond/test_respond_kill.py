"""A real `safeeraser respond` process killed with SIGKILL mid-run, then resumed: no answer twice, none missing,
and the same file as an uninterrupted run with the same seed (sampling on, so the seeds matter)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, subprocess_env

from llamafactory_safeeraser.respond.run import journal_path

pytestmark = pytest.mark.slow
RECORDS = 12
ITEMS = RECORDS * 4 * 2  # records x harmful questions x (model_response, sd_response)


def respond_command(model_dir: Path, source: Path, out: Path) -> list[str]:
    return [
        str(BIN / "safeeraser"), "respond", "--model", str(model_dir), "--in", str(source), "--out", str(out),
        "--sd-response", "--do-sample", "--seed", "7", "--batch-size", "2", "--max-new-tokens", "24",
        "--limit", str(RECORDS),
    ]  # fmt: skip


def journal_keys(journal: Path) -> list[str]:
    lines = journal.read_text(encoding="utf-8").split("\n")[1:]
    return [json.loads(line)["key"] for line in lines if line.strip()]  # a torn last line has no newline yet


def run_until_killed(command: list[str], journal: Path, at_least: int) -> None:
    """Start ``command``; SIGKILL it once the journal holds ``at_least`` answers (before it could finish)."""
    proc = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") - 1 >= at_least:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (exit {proc.returncode}): {proc.stderr.read()}"


def test_killed_and_resumed_equals_an_uninterrupted_run(tiny_model_dir, synthetic_dir, tmp_path):
    source = synthetic_dir / "all_train.json"
    plain, killed = tmp_path / "plain", tmp_path / "killed"
    command = respond_command(tiny_model_dir, source, killed)
    journal = journal_path(killed / "all_train.json")

    run_until_killed(command, journal, at_least=10)
    first = journal_keys(journal)
    assert 10 <= len(first) < ITEMS and len(first) == len(set(first))
    assert not (killed / "all_train.json").exists()  # nothing final before the end
    with open(journal, "a", encoding="utf-8") as handle:  # as if the kill had cut a write in half
        handle.write('{"key": "11:3:sd_response", "te')

    resumed = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{ITEMS - len(first)} answers generated, {len(first)} resumed" in resumed.stdout
    assert not journal.exists()

    uninterrupted = subprocess.run(
        respond_command(tiny_model_dir, source, plain), env=subprocess_env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert f"{ITEMS} answers generated, 0 resumed" in uninterrupted.stdout
    ours = json.loads((killed / "all_train.json").read_text())
    assert len(ours) == RECORDS
    assert ours == json.loads((plain / "all_train.json").read_text())
    original = json.loads(source.read_text())
    changed = sum(
        new["model_response"] != old["model_response"] and new["sd_response"] != old["sd_response"]
        for record, before in zip(ours, original[:RECORDS], strict=True)
        for new, old in zip(record["unsafe_pairs"], before["unsafe_pairs"], strict=True)
    )
    assert changed > ITEMS // 2 * 0.9  # the answers are the model's (an untrained model: not the dataset's)
    validate = subprocess.run(
        [str(BIN / "safeeraser"), "validate", str(killed / "all_train.json")], env=subprocess_env(),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stderr
