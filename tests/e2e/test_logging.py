"""Per-term losses reach the loggers `report_to` names: TensorBoard's event file and a W&B run (offline here),
each read back from what a real `llamafactory-cli train` run wrote, step by step; and LlamaBoard's
trainer_log.jsonl. The terms go through the HF Trainer's `log`, so every `report_to` integration gets them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import base_train_config, llamafactory_train, log_history

pytestmark = pytest.mark.slow

TERMS = ("forget_nll", "npo_log_ratio", "npo_loss", "pd_nll")


def wandb_history(run_file: Path) -> list[dict[str, float]]:
    """The history rows of a W&B run file (``run-<id>.wandb``), as the W&B callback logged them.

    The file is W&B's record log: a 7-byte header (":W&B", magic, version), then records in 32 KiB blocks,
    each chunk headed by a checksum (4 bytes), its length (2) and its kind (1: whole, 2-4: first/middle/last
    part); a record is a protobuf ``Record``.
    """
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    rows, position, pending = [], 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or its last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                # a key with "/" (the Trainer's "train/loss") is stored split, as nested_key
                items = record.history.item
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def test_per_term_losses_reach_tensorboard_wandb_and_llamaboards_log(tiny_model_dir, prepared_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="unlearn",
        unlearn_method="npo",
        dataset="safeeraser_forget",
        pd_dataset="safeeraser_pd",
        max_steps=4,
        report_to=["tensorboard", "wandb"],
    )
    out = llamafactory_train(
        config, tmp_path, "npo_pd", WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true"
    )
    logged = {entry["step"]: entry for entry in log_history(out) if "loss" in entry}
    assert sorted(logged) == [1, 2, 3, 4]
    assert logged[4]["npo_log_ratio"] < logged[1]["npo_log_ratio"] == 0.0  # the terms move as training does

    (event_dir,) = {path.parent for path in (out / "runs").rglob("events.out.tfevents.*")}  # the default folder
    events = EventAccumulator(str(event_dir))
    events.Reload()
    for term in TERMS:
        scalars = {event.step: event.value for event in events.Scalars(f"train/{term}")}
        assert scalars == pytest.approx({step: entry[term] for step, entry in logged.items()}, rel=1e-6, abs=1e-6)

    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    history = {row["train/global_step"]: row for row in wandb_history(run_file) if "train/loss" in row}
    assert sorted(history) == [1, 2, 3, 4]
    for term in TERMS:
        assert {step: row[f"train/{term}"] for step, row in history.items()} == pytest.approx(
            {step: entry[term] for step, entry in logged.items()}, rel=1e-9
        )

    lines = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert {line["current_steps"]: line["loss_terms"] for line in lines if "loss_terms" in line} == {
        step: {term: entry[term] for term in TERMS} for step, entry in logged.items()
    }
