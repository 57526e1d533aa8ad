"""Smoke test of the benchmark scripts: each runs in --quick mode and writes well-formed JSON.

The scripts run in this process (their imports are already paid for) on the session's tiny
model and synthetic data. Only the structure and the sanity of the numbers are checked, never a
timing: on a shared 2-core machine timings say nothing about correctness.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SCRIPTS = ("step_cost", "fused_vs_separate", "reference_memory", "npo_cache", "eval_throughput")


@pytest.fixture(scope="module")
def run_script(tiny_model_dir: Path, synthetic_dir: Path, prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Call a script's ``main`` with --quick on a work dir that reuses the session's model and data."""
    import torch

    work_dir = tmp_path_factory.mktemp("bench_work")
    for name, target in (("llava-tiny", tiny_model_dir), ("data", synthetic_dir), ("datasets", prepared_dir)):
        (work_dir / name).symlink_to(target, target_is_directory=True)
    out_dir = tmp_path_factory.mktemp("bench_out")
    sys.path.insert(0, str(BENCHMARKS))
    threads = torch.get_num_threads()

    def run(name: str) -> dict:
        module = importlib.import_module(name)
        out = out_dir / f"{name}.json"
        module.main(["--quick", "--threads", "1", "--work-dir", str(work_dir), "--out", str(out)])
        return json.loads(out.read_text())

    yield run
    torch.set_num_threads(threads)
    sys.path.remove(str(BENCHMARKS))


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_timings(timings: dict, names: set[str]) -> None:
    assert set(timings) == names
    for summary in timings.values():
        assert summary["n"] == len(summary["values_s"]) >= 1
        assert all(positive(v) for v in (summary["median_s"], summary["min_s"], summary["max_s"], *summary["values_s"]))


def check_document(document: dict, name: str) -> None:
    assert document["benchmark"] == name
    assert document["quick"] is True and document["model_size"] == "tiny"
    assert positive(document["machine"]["torch_threads"]) and document["machine"]["cpu_model"]


def test_step_cost(run_script):
    document = run_script("step_cost")
    check_document(document, "step_cost")
    assert positive(document["matmul"]["gflops"])
    labels = [config["label"] for config in document["configs"]]
    assert labels == [f"{m.upper()}{pd}" for m in ("ga", "gd", "kl", "po", "npo") for pd in ("", "+PD")]
    for config in document["configs"]:
        names = {"unlearning_step", "sft_step"} | (
            {"reference_forward"} if config["method"] in ("kl", "npo") else set()
        )
        check_timings(config["timings"], names)
        assert all(positive(config[key]) for key in ("ratio", "target", "floor_s", "unlearning_over_floor"))
        assert config["target"] >= document["target"]
        assert isinstance(config["met"], bool)
        flops = config["flops"]
        assert all(positive(flops[key]) for key in ("forward_flops", "backward_flops", "total_flops", "real_tokens"))
        assert flops["padded_tokens"] >= flops["real_tokens"]
        assert ("pd" in config["sets"]) == config["pd"]


def test_fused_vs_separate(run_script):
    document = run_script("fused_vs_separate")
    check_document(document, "fused_vs_separate")
    assert set(document["scenarios"]) == {"as-is", "long-forget"}
    for rows in document["scenarios"].values():
        assert [row["batch_size"] for row in rows] == document["batch_sizes"]
        for row in rows:
            check_timings(row["timings"], {"fused", "separate"})
            assert positive(row["separate_over_fused"]) and row["winner"] in ("fused", "separate")
            assert (
                row["fused_padded_tokens"] >= row["real_tokens"] and row["separate_padded_tokens"] >= row["real_tokens"]
            )
    # the long-forget data pads the short rows of a stacked batch far more than the data as is
    long_rows, as_is = document["scenarios"]["long-forget"][-1], document["scenarios"]["as-is"][-1]
    assert (
        long_rows["fused_padded_tokens"] / long_rows["real_tokens"]
        > as_is["fused_padded_tokens"] / as_is["real_tokens"]
    )


def test_reference_memory(run_script):
    document = run_script("reference_memory")
    check_document(document, "reference_memory")
    assert document["measures"] == ["tensors"]  # quick: in-process, tensor peaks only
    runs = {run["label"]: run for run in document["runs"]}
    assert set(runs) == {"GA", "GD", "KL", "KL, second copy", "NPO", "NPO, second copy"}
    for run in runs.values():
        assert positive(run["peak_bytes"]["tensors"]) and positive(run["vs_ga"]["tensors"])
    assert isinstance(runs["KL"]["met"], bool) and isinstance(runs["NPO"]["met"], bool)
    # exact allocator accounting: a second model copy is always visible
    for method in ("KL", "NPO"):
        extra = runs[f"{method}, second copy"]["peak_bytes"]["tensors"] - runs[method]["peak_bytes"]["tensors"]
        assert extra > 0.5 * document["model_file_bytes"]


def test_npo_cache(run_script):
    document = run_script("npo_cache")
    check_document(document, "npo_cache")
    check_timings(document["timings"], {"recomputed", "cached"})
    assert document["cached_rows"] == document["batch_size"]
    assert document["max_abs_difference_cached_vs_fresh"] < 1e-4
    assert all(math.isfinite(document[key]) for key in ("saving_per_step_s", "saving_whole_run_fraction"))


def test_eval_throughput(run_script):
    document = run_script("eval_throughput")
    check_document(document, "eval_throughput")
    assert isinstance(document["met_at_longest"], bool) and document["lengths"]
    for row in document["lengths"]:
        check_timings(row["timings"], {"lm_eval", "per_sample_loop"})
        assert row["responses"] == 4 * 6 * document["limit_per_task"]  # four kinds, six category subtasks each
        assert all(positive(v) for v in row["responses_per_s"].values())
        assert all(positive(v) for v in row["mean_generated_tokens"].values())
        assert positive(row["speedup"]) and isinstance(row["met"], bool)
