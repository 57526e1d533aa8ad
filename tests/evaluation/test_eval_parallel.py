"""Evaluation in parallel processes: per-document sampling seeds, the judge's bound on requests in flight over
processes (a real HTTP server on 127.0.0.1 counts them), and ``safeeraser eval`` with 1 and 2 processes giving the
same samples and numbers (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import run_cli, subprocess_env
from test_eval_judges import JudgeServer, judge_environment, openai_config  # noqa: F401  (an autouse fixture)

from llamafactory_safeeraser.lmeval_task.judges import HarmQuery, get_judge
from llamafactory_safeeraser.lmeval_task.judges.openai_compatible import concurrency_share
from llamafactory_safeeraser.lmeval_task.seeded_hf import PerRowSampler, document_seed, sampling_warpers


def test_document_seed_depends_on_the_run_seed_and_the_request_only() -> None:
    seed = document_seed(233, "safeeraser_efficacy_weapon", 5, 0)
    assert seed == document_seed(233, "safeeraser_efficacy_weapon", 5, 0)
    others = [
        document_seed(234, "safeeraser_efficacy_weapon", 5, 0),
        document_seed(233, "safeeraser_sarr_weapon", 5, 0),
        document_seed(233, "safeeraser_efficacy_weapon", 6, 0),
        document_seed(233, "safeeraser_efficacy_weapon", 5, 1),
    ]
    assert len({seed, *others}) == 5 and all(0 <= value < 2**63 for value in [seed, *others])


def draw(sampler: PerRowSampler, logits: torch.Tensor, steps: int) -> list[list[int]]:
    """Tokens per row over ``steps`` calls; asserts each call leaves exactly one finite score per row."""
    tokens: list[list[int]] = [[] for _ in range(logits.shape[0])]
    for _ in range(steps):
        scores = sampler(torch.zeros(logits.shape[0], 1, dtype=torch.long), logits.clone())
        assert torch.isfinite(scores).sum(dim=1).tolist() == [1] * logits.shape[0]
        for row, token in enumerate(scores.argmax(dim=1).tolist()):
            tokens[row].append(token)
    return tokens


def test_a_rows_draws_do_not_depend_on_its_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    warpers = sampling_warpers({"temperature": 1.0, "top_p": 0.9})
    together = draw(PerRowSampler(warpers, [11, 12, 13, 14]), logits, steps=20)
    torch.manual_seed(999)  # the global generator plays no part
    alone = [
        draw(PerRowSampler(warpers, [seed]), logits[row : row + 1], steps=20)[0] for row, seed in [(2, 13), (0, 11)]
    ]
    pair = draw(PerRowSampler(warpers, [12, 14]), logits[[1, 3]], steps=20)
    assert alone == [together[2], together[0]] and pair == [together[1], together[3]]
    assert len({tuple(row) for row in together}) == 4  # different seeds draw differently


def test_draws_follow_the_warped_distribution() -> None:
    # top-p 0.9 over probabilities (0.7, 0.25, 0.05): the nucleus is the first two tokens, renormalized 0.74 / 0.26
    logits = torch.log(torch.tensor([[0.7, 0.25, 0.05]]))
    tokens = draw(PerRowSampler(sampling_warpers({"top_p": 0.9, "top_k": 0}), [5]), logits, steps=4000)[0]
    assert 2 not in tokens
    assert tokens.count(0) / len(tokens) == pytest.approx(0.7 / 0.95, abs=0.03)


@pytest.mark.parametrize(
    ("total", "processes", "shares"), [(8, 1, [8]), (8, 2, [4, 4]), (7, 2, [4, 3]), (3, 4, [1, 1, 1, 1])]
)
def test_concurrency_share(monkeypatch, total: int, processes: int, shares: list[int]) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(processes))
    got = []
    for rank in range(processes):
        monkeypatch.setenv("RANK", str(rank))
        got.append(concurrency_share(total))
    assert got == shares


def queries(prefix: str, count: int) -> list[HarmQuery]:
    return [HarmQuery("Weapon", f"{prefix} question {i}?", f"Sure. Answer {i}.", None, "Sure.") for i in range(count)]


def test_the_bound_holds_for_callers_in_several_threads(tmp_path: Path) -> None:
    with JudgeServer(delay=0.1) as server:
        judge = get_judge(openai_config(server, tmp_path, concurrency=3, cache="off", health_timeout=0))
        threads = [threading.Thread(target=judge.prefetch, args=(queries(f"t{t}", 6),)) for t in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(server.prompts) == 18 and server.max_in_flight == 3


PROCESS = """
import sys
from llamafactory_safeeraser.lmeval_task.judges import HarmQuery, JudgeConfig, get_judge
base_url, rank = sys.argv[1], sys.argv[2]
config = JudgeConfig(name="openai", model="judge-model", base_url=base_url, cache="off", concurrency=5,
                     health_timeout=0)
get_judge(config).prefetch(
    [HarmQuery("Weapon", f"rank {rank} question {i}?", "Sure.", None, "Sure.") for i in range(12)]
)
"""


def test_the_bound_holds_over_the_processes_of_a_job(tmp_path: Path) -> None:
    """concurrency 5 over 2 processes: shares 3 and 2; never more than 5 in flight at the server, and 5 reached."""
    with JudgeServer(delay=0.3) as server:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", PROCESS, server.base_url, str(rank)],
                env=subprocess_env(RANK=str(rank), WORLD_SIZE="2", NO_PROXY="127.0.0.1"),
            )
            for rank in range(2)
        ]
        assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
        assert len(server.prompts) == 24
        assert server.max_in_flight == 5


@pytest.mark.slow
def test_two_processes_give_the_samples_and_numbers_of_one(
    tiny_model_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    """Sampling on (the tasks' temperature 1, top-p 0.9): one process with batch 4 and two processes with batch 2
    write the same samples.jsonl, line for line, and the same numbers."""
    common = [
        f"model_name_or_path={tiny_model_dir}",
        f"data_dir={synthetic_dir}",
        "run_name=r",
        "limit=3",
        "max_new_tokens=6",
        "harmful_samples=2",
        "seed=5",
    ]
    one = run_cli(
        ["safeeraser", "eval", *common, f"output_dir={tmp_path / 'one'}", "batch_size=4", "document_seeds=true"],
        timeout=900,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(
        ["safeeraser", "eval", *common, f"output_dir={tmp_path / 'two'}", "batch_size=2", "num_processes=2"],
        timeout=900,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    samples = {name: (tmp_path / name / "r" / "samples.jsonl").read_text().splitlines() for name in ("one", "two")}
    assert len(samples["one"]) == 3 * 6 * 4  # 3 documents per category subtask (limit), 24 subtasks
    assert samples["one"] == samples["two"]
    responses = [json.loads(line)["response"] for line in samples["one"]]
    assert len(set(responses)) > len(responses) // 2  # sampled: repeats of a question differ
    results = {name: json.loads((tmp_path / name / "r" / "results.json").read_text()) for name in ("one", "two")}
    assert results["one"]["tasks"] == results["two"]["tasks"]
    assert results["one"]["summary"] == results["two"]["summary"]
    lm_eval = {name: results[name]["lm_eval"]["results"] for name in ("one", "two")}
    assert lm_eval["one"].keys() == lm_eval["two"].keys()
    for task, values in lm_eval["one"].items():  # lm-eval sums the gathered values in rank order: last bits
        assert values.keys() == lm_eval["two"][task].keys()
        for key, value in values.items():
            other = lm_eval["two"][task][key]
            assert other == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), (task, key)


def test_plain_lm_eval_finds_the_seeded_model() -> None:
    """The start-up hook adds it to lm-eval's model index: ``lm-eval --model safeeraser-hf-multimodal`` works."""
    code = "from lm_eval.api.registry import get_model; print(get_model('safeeraser-hf-multimodal').__name__)"
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "SeededHFMultimodalLM"
