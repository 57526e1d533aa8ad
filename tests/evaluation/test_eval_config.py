"""``safeeraser eval CONFIG.yaml [key=value ...]`` and ``safeeraser report CONFIG.yaml``: keys declared once, read
from YAML, overrides and flags; one-line errors; the shipped yaml/eval_*.yaml; the key table in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run_cli

import yaml
from llamafactory_safeeraser.cli import build_parser
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.config import EvalCommand, ReportCommand, SpecificityCommand
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig
from llamafactory_safeeraser.settings import from_arguments, keys_of, markdown_table, read_config


def job_from(argv: list[str]):
    args = build_parser().parse_args(["eval", *argv])
    return from_arguments(EvalCommand, args)


def write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_yaml_overrides_and_flags_build_the_same_job_as_the_flag_form(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "eval.yaml",
        {
            "model_name_or_path": "llava-hf/llava-1.5-7b-hf",
            "adapter_name_or_path": "saves/npo_pd",
            "template": "qwen2_vl",
            "image_max_pixels": 262144,
            "data_dir": "data/safeeraser",
            "harmful_samples": 3,
            "max_new_tokens": 64,
            "judge": "openai",
            "judge_model": "judge-m",
            "judge_base_url": "http://127.0.0.1:8000/v1",
            "judge_cache": "off",
            "judge_timeout": 30,
            "output_dir": "eval_out",
            "seed": 7,
        },
    )
    from_yaml = job_from([str(config), "limit=4", "batch_size=8", "run_name=NPO+PD", "--seed", "9"])
    from_flags = job_from(
        [
            "--model",
            "llava-hf/llava-1.5-7b-hf",
            "--adapter",
            "saves/npo_pd",
            "--name",
            "NPO+PD",
            "--template",
            "qwen2_vl",
            "--image-max-pixels",
            "262144",
            "--data",
            "data/safeeraser",
            "--harmful-samples",
            "3",
            "--max-gen-toks",
            "64",
            "--limit",
            "4",
            "--batch-size",
            "8",
            "--judge",
            "openai",
            "--judge-model",
            "judge-m",
            "--judge-base-url",
            "http://127.0.0.1:8000/v1",
            "--judge-cache",
            "off",
            "--judge-timeout",
            "30",
            "--out",
            "eval_out",
            "--seed",
            "9",
        ]
    )
    assert from_yaml == from_flags
    settings = from_yaml.settings
    assert (settings.limit, settings.batch_size, settings.seed, settings.max_gen_toks) == (4, 8, 9, 64)  # flags win
    assert settings.image_max_pixels == 262144 and settings.image_min_pixels is None and settings.template == "qwen2_vl"
    assert settings.judge == JudgeConfig("openai", "judge-m", "http://127.0.0.1:8000/v1", "off", timeout=30.0)
    assert (from_yaml.run.name, str(from_yaml.run.adapter), from_yaml.output_dir) == (
        "NPO+PD",
        "saves/npo_pd",
        Path("eval_out"),
    )


def test_defaults_follow_the_reference_and_the_run_is_named_after_its_adapter(tmp_path: Path) -> None:
    job = job_from(["model_name_or_path=models/base", "adapter_name_or_path=saves/po_pd", "output_dir=out"])
    assert job.run.name == "po_pd" and job.settings.harmful_samples == 3 and job.settings.max_gen_toks is None
    assert job.settings.judge == JudgeConfig() and job.settings.tasks == ("safeeraser",)
    assert job_from(["model_name_or_path=models/base", "output_dir=out"]).run.name == "base"


@pytest.mark.parametrize(
    ("values", "overrides", "message"),
    [
        ({"model_name_or_path": "m", "output_dir": "o", "modle": "x"}, [], "unknown key 'modle'"),
        ({"model_name_or_path": "m", "output_dir": "o"}, ["limit=abc"], "command line: key 'limit': expected an "),
        ({"model_name_or_path": "m", "output_dir": "o", "judge_cache": False}, [], "expected a string (quote it)"),
        ({"model_name_or_path": "m", "output_dir": "o"}, ["sarr_question=benign"], "must be one of harmful, sd_quest"),
        ({"model_name_or_path": "m", "output_dir": "o"}, ["batch_size=0"], "key 'batch_size' must be >= 1, got 0"),
        ({"model_name_or_path": "m", "output_dir": "o"}, ["overwrite=maybe"], "key 'overwrite': expected true or"),
        ({"output_dir": "o"}, [], "key 'model_name_or_path' must be set"),
        ({"model_name_or_path": "m", "output_dir": "o"}, ["limit"], "expected key=value, got 'limit'"),
    ],
)
def test_bad_keys_and_values_are_one_line_errors(values: dict, overrides: list, message: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "eval.yaml", values)
    with pytest.raises(SafeEraserError) as caught:
        read_config(EvalCommand, config, overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_key_exits_2_with_one_line_listing_the_valid_keys(tmp_path: Path) -> None:
    config = write_config(tmp_path / "eval.yaml", {"model_name_or_path": "m", "dataset": "x", "output_dir": "o"})
    proc = run_cli(["safeeraser", "eval", str(config)], timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"safeeraser: error: {config}: unknown key 'dataset'")
    listed = line.split("valid keys: ", 1)[1].split(", ")
    assert listed == [key.name for key in keys_of(EvalCommand)]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["eval_llava7b", "eval_llava13b", "eval_tiny"])
def test_shipped_eval_configs_are_valid(name: str) -> None:
    job = read_config(EvalCommand, REPO / "yaml" / f"{name}.yaml")
    assert job.settings.template == "llava" and job.run.adapter is not None
    if name == "eval_tiny":
        # the CPU demo's model, NPO+PD adapter and data, where `safeeraser demo` writes them (its first seed)
        from llamafactory_safeeraser.demo.settings import DEFAULT_SEEDS

        seed_dir = f"demo_out/seed-{DEFAULT_SEEDS[0]}"
        assert (job.run.model, job.run.adapter) == (f"{seed_dir}/vanilla", f"{seed_dir}/runs/npo_pd")
        assert str(job.settings.data_dir) == f"{seed_dir}/data"
        assert job.settings.judge.name == "rule"
    else:
        size = name.removeprefix("eval_llava")
        recipe = yaml.safe_load((REPO / "yaml" / f"llava{size}_npo_pd.yaml").read_text())
        assert (job.run.model, job.run.adapter) == (recipe["model_name_or_path"], recipe["output_dir"])
        assert job.settings.harmful_samples == 3 and job.settings.max_gen_toks == 512  # the reference's
        assert job.settings.judge.name == "openai" and job.settings.judge.model == "gpt-4o"
        assert job.settings.image_max_pixels == recipe["image_max_pixels"]  # images resized as training did


def test_docs_key_tables_are_the_declared_ones() -> None:
    docs = (REPO / "docs" / "evaluation.md").read_text()
    for command, keys in (("eval", EvalCommand), ("specificity", SpecificityCommand), ("report", ReportCommand)):
        match = re.search(
            rf"<!-- {command} keys: generated by `safeeraser config-keys {command}` -->\n(.*?)\n\n", docs, re.S
        )
        assert match, f"docs/evaluation.md lacks the {command} key table"
        assert match.group(1) == markdown_table(keys)
    proc = run_cli(["safeeraser", "config-keys", "report"], timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == markdown_table(ReportCommand)


def test_specificity_keys_share_the_model_and_output_keys(tmp_path: Path) -> None:
    from llamafactory_safeeraser.evaluation.specificity import DEFAULT_TASKS

    command = read_config(
        SpecificityCommand, None, ["model_name_or_path=m", "adapter_name_or_path=saves/po", "output_dir=o"]
    )
    run, settings, out = command.run, command.settings, command.output_dir
    assert (run.name, settings.tasks, settings.lmms_model, out) == ("po", DEFAULT_TASKS, "llava_hf", Path("o"))
    with pytest.raises(SafeEraserError, match="unknown key 'judge'"):
        read_config(SpecificityCommand, None, ["model_name_or_path=m", "output_dir=o", "judge=rule"])


def test_report_from_a_yaml_listing_run_folders(tmp_path: Path) -> None:
    from test_eval_report import results, write_runs

    folders = write_runs(tmp_path / "eval", [results("GA", 0.1, 0.9), results("GA+PD", 0.1, 0.3)])
    config = write_config(tmp_path / "report.yaml", {"runs": [str(f) for f in folders], "output": "unused.md"})
    out = tmp_path / "out" / "report.md"
    proc = run_cli(["safeeraser", "report", str(config), f"output={out}"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| GA | 90.0 | 30.0 | -66.7% |" in out.read_text()
    proc = run_cli(["safeeraser", "report", str(config), "run=GA"], timeout=120)
    assert proc.returncode == 2 and "unknown key 'run' (did you mean 'runs'?); valid keys: runs, output" in proc.stderr


def test_eval_passes_overwrite_on_to_the_runner(monkeypatch, tmp_path: Path) -> None:
    from llamafactory_safeeraser.cli import main

    seen: list[bool] = []
    monkeypatch.setattr(
        "llamafactory_safeeraser.evaluation.runner.evaluate_runs",
        lambda runs, settings, out, progress=None, overwrite=False, num_processes=1: seen.append(overwrite),
    )
    base = ["eval", "model_name_or_path=m", f"output_dir={tmp_path}"]
    assert main(base) == 0 and main([*base, "overwrite=true"]) == 0 and main([*base, "--overwrite"]) == 0
    assert seen == [False, True, True]
