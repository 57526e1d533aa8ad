"""Relearning without training: the split, the settings, the LLaMA-Factory config, the curve and the report."""

from __future__ import annotations

import json
import shutil

import pytest

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.results import RunSpec
from llamafactory_safeeraser.evaluation.seed_stats import mean_sd
from llamafactory_safeeraser.relearn import RelearnSettings, relearn_runs, write_relearn_report
from llamafactory_safeeraser.relearn.curve import aggregate
from llamafactory_safeeraser.relearn.report import RELEARN_FILE, RELEARN_FORMAT, pooled_study
from llamafactory_safeeraser.relearn.split import image_groups, split_records
from llamafactory_safeeraser.relearn.train import relearn_config
from llamafactory_safeeraser.settings import build


# ----- the split -----------------------------------------------------------------------------------------
def test_split_is_by_whole_record_seeded_and_shares_no_image(synthetic_dir):
    records = read_benchmark(synthetic_dir / "all_train.json")
    split = split_records(records, 0.25, seed=233)
    assert len(split.relearn) == 6 and len(split.scored) == 18
    assert sorted(split.relearn + split.scored) == list(range(24))
    images = {i: {records[i].image_path, records[i].sd_image_path} for i in range(24)}
    assert not set().union(*(images[i] for i in split.relearn)) & set().union(*(images[i] for i in split.scored))
    assert split_records(records, 0.25, seed=233) == split
    assert split_records(records, 0.25, seed=234) != split
    assert len(split_records(records, 0.5, seed=1).relearn) == 12


def test_records_sharing_an_image_stay_on_one_side(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    raw = json.loads((data / "all_train.json").read_text())
    for i in (1, 2, 9):  # records 0, 1, 2 and 9 now show one SD image
        raw[i]["SDImage_path"] = raw[0]["SDImage_path"]
    (data / "all_train.json").write_text(json.dumps(raw))
    records = read_benchmark(data / "all_train.json")
    assert [0, 1, 2, 9] in image_groups(records) and len(image_groups(records)) == 21
    for seed in range(20):
        split = split_records(records, 0.25, seed)
        assert {0, 1, 2, 9} <= set(split.relearn) or not {0, 1, 2, 9} & set(split.relearn)
    with pytest.raises(SafeEraserError, match="at least two records with distinct images"):
        split_records(records[:1], 0.5, 0)


# ----- settings and the training config -------------------------------------------------------------------
def test_settings_add_step_zero_and_checkpoint_on_every_step_count(tmp_path):
    settings = RelearnSettings(data=str(tmp_path), steps=(20, 6, 12))
    assert settings.steps == (0, 6, 12, 20) and settings.max_steps == 20 and settings.save_steps == 2
    assert RelearnSettings(data=str(tmp_path), steps=(0,)).save_steps == 0
    for bad, message in (
        ({"relearn_share": 1.0}, "'relearn_share' must be between 0 and 1"),
        ({"seeds": (1, 1)}, "'seeds' repeats a seed: 1 1"),
        ({"tasks": ("safeeraser_nope",)}, "unknown SafeEraser task 'safeeraser_nope'"),
        ({"judge": "openai"}, "the openai judge needs"),  # the judge keys: one group, JudgeConfig
        ({"steps": (-1,)}, r"key 'steps' must be >= 0, got -1"),
    ):
        with pytest.raises(SafeEraserError, match=message):
            build(RelearnSettings, {"data": str(tmp_path), **bad})  # key values, as the command line gives them


def test_relearning_config_is_plain_sft_of_a_new_adapter_at_a_constant_rate(tmp_path):
    settings = RelearnSettings(
        data=str(tmp_path), steps=(8, 4), learning_rate=5e-3, train_args={"bf16": True, "lora_rank": 16}
    )
    config = relearn_config(tmp_path / "merged", tmp_path / "ds", tmp_path / "train", settings, seed=7)
    assert config["stage"] == "sft" and config["finetuning_type"] == "lora" and "adapter_name_or_path" not in config
    assert (config["max_steps"], config["save_steps"], config["lr_scheduler_type"]) == (8, 4, "constant")
    assert (config["learning_rate"], config["seed"], config["model_name_or_path"]) == (
        5e-3,
        7,
        str(tmp_path / "merged"),
    )
    assert config["bf16"] is True and config["lora_rank"] == 16  # the user's keys win
    assert "image_max_pixels" not in config  # LLaMA-Factory's default unless given, then in training and scoring
    sized = RelearnSettings(data=str(tmp_path), image_max_pixels=401408)
    assert relearn_config(tmp_path, tmp_path, tmp_path, sized, 1)["image_max_pixels"] == 401408
    assert sized.eval_settings(tmp_path / "rest.json", 1).image_max_pixels == 401408


# ----- the curve and the report ------------------------------------------------------------------------------
def test_curve_is_mean_and_sample_sd_over_seeds():
    seed_a = [
        {"steps": 0, "summary": {"asr_eff": 0.0, "rr_eff": 0.5, "sarr": None}},
        {"steps": 8, "summary": {"asr_eff": 0.5}},
    ]
    seed_b = [
        {"steps": 0, "summary": {"asr_eff": 0.25, "rr_eff": 0.25, "sarr": None}},
        {"steps": 8, "summary": {"asr_eff": 1.0}},
    ]
    curve = aggregate([seed_a, seed_b])
    assert [point["steps"] for point in curve] == [0, 8]
    assert curve[0]["metrics"]["asr_eff"] == pytest.approx({"mean": 0.125, "sd": 0.1767767, "n": 2})
    assert curve[1]["metrics"]["asr_eff"] == pytest.approx({"mean": 0.75, "sd": 0.3535534, "n": 2})
    assert "sarr" not in curve[0]["metrics"] and "rr_eff" not in curve[1]["metrics"]
    assert mean_sd([0.4]) == {"mean": 0.4, "sd": None, "n": 1}


def study(name: str, before: list[float], after: list[float]) -> dict:
    seeds = [
        {
            "seed": seed,
            "relearn_records": [1, 2],
            "scored_records": [0, 3, 4],
            "relearn_rows": 8,
            "points": [{"steps": 0, "summary": {"asr_eff": b, "asr_gen": b}}, {"steps": 4, "summary": {"asr_eff": a}}],
        }
        for seed, b, a in zip((1, 2, 3), before, after, strict=False)
    ]
    settings = {"learning_rate": 1e-3, "batch_size": 4, "gradient_accumulation_steps": 2, "lora_rank": 8}
    return {
        "format": RELEARN_FORMAT,
        "run": {"name": name, "model": "/m", "adapter": None},
        "settings": settings,
        "seeds": seeds,
        "curve": aggregate([s["points"] for s in seeds]),
    }


def test_report_has_a_curve_per_run_and_a_plot(tmp_path):
    for name, document in (("GA", study("GA", [0.0, 0.1], [0.6, 0.8])), ("vanilla", study("vanilla", [1.0], [1.0]))):
        (tmp_path / name).mkdir()
        (tmp_path / name / RELEARN_FILE).write_text(json.dumps(document))
    report = write_relearn_report([tmp_path / "GA", tmp_path / "vanilla"], tmp_path / "report.md")
    text = report.read_text()
    assert "| GA | 2 | 4 | 5.0 → 70.0 (+65.0) | n/a |" in text  # ASR gen: not measured after relearning here
    assert "| vanilla | 1 | 4 | 100.0 → 100.0 (+0.0) | n/a |" in text
    assert "| 0 | 5.0 ± 7.1 | 5.0 ± 7.1 |" in text and "| 4 | 70.0 ± 14.1 | n/a |" in text
    assert "| 4 | 100.0 | n/a |" in text  # one seed: no sd
    assert "seed 1: 2 records (8 rows) relearned, 3 scored" in text and "batch 4 × 2" in text
    assert "![recovery curves](report.png)" in text
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "GA" / RELEARN_FILE).write_text("{}")
    with pytest.raises(SafeEraserError, match=r"GA/relearn\.json: not a relearning result"):
        write_relearn_report([tmp_path / "GA"], tmp_path / "again.md")


def test_studies_of_one_run_on_different_models_pool_into_one_curve():
    """The demo relearns each seed's own model once; the pooled curve is over all of them."""
    first, second = study("PO", [0.0], [0.5]), study("PO", [0.2], [1.0])
    second["seeds"][0]["seed"] = 2
    pooled = pooled_study([first, second])
    assert [seed["seed"] for seed in pooled["seeds"]] == [1, 2]
    assert pooled["curve"][0]["metrics"]["asr_eff"] == pytest.approx({"mean": 0.1, "sd": 0.1414214, "n": 2})
    assert pooled["curve"][1]["metrics"]["asr_eff"] == pytest.approx({"mean": 0.75, "sd": 0.3535534, "n": 2})
    assert first["curve"][0]["metrics"]["asr_eff"]["n"] == 1  # the inputs are left as they were


# ----- bad input fails before any training, leaving nothing behind ------------------------------------------
def test_bad_input_fails_in_one_line_before_training(tiny_model_dir, synthetic_dir, tmp_path):
    out = tmp_path / "out"
    (out / "GA").mkdir(parents=True)
    settings = RelearnSettings(data=str(synthetic_dir))
    with pytest.raises(SafeEraserError, match=r"out/GA: run folder exists \(pass --overwrite"):
        relearn_runs([RunSpec("GA", tiny_model_dir)], settings, out)
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    (data / "all_val.json").unlink()
    with pytest.raises(SafeEraserError, match=r"all_val\.json: file not found"):
        relearn_runs([RunSpec("new", tiny_model_dir)], RelearnSettings(data=str(data)), out)
    with pytest.raises(SafeEraserError, match=r"run 'x': PEFT adapter folder not found"):
        relearn_runs([RunSpec("x", tiny_model_dir, tmp_path / "missing")], settings, out)
    assert sorted(p.name for p in out.iterdir()) == ["GA"] and not any((out / "GA").iterdir())
