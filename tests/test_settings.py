"""Settings declared once (settings.setting): YAML, key=value, flags, lm-eval metadata and Python get one
coercion, one precedence and one-line errors; groups share a prefix; the docs' key tables are the declarations."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_cli

from llamafactory_safeeraser.cli import COMMANDS, SETTINGS, build_parser, main
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.lmeval_task.documents import TaskOptions
from llamafactory_safeeraser.lmeval_task.judges import JudgeConfig
from llamafactory_safeeraser.relearn.settings import RelearnCommand
from llamafactory_safeeraser.respond.settings import RespondSettings
from llamafactory_safeeraser.settings import (
    METADATA,
    Setting,
    add_arguments,
    check_settings,
    from_arguments,
    group,
    hf_dataclass,
    keys_of,
    markdown_table,
    read_values,
    setting,
)


@dataclass(frozen=True)
class Inner:
    name: str = setting("a", name="tool", help="which tool", choices=("a", "b"))
    size: int = setting(2, help="its size", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class Example:
    model: str | None = setting(help="the model", required=True)
    batch_size: int = setting(8, help="batch", minimum=1)
    rate: float = setting(1.0e-4, help="rate", minimum=0)
    mode: str = setting("greedy", help="mode", choices=("greedy", "sample"))
    steps: tuple[int, ...] = setting((0, 5), help="steps", minimum=0)
    sample: bool = setting(False, help="sample")
    extra: dict[str, Any] | None = setting(help="extra keys", flags=("--extra-arg",))
    source: str | None = setting(help="input", flags=("--in",))
    tool: Inner = group(Inner, "tool_")

    def __post_init__(self) -> None:
        check_settings(self)


def parse(argv: list[str]) -> Example:
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example)
    return from_arguments(Example, parser.parse_args(argv))


def test_config_file_and_flags_flags_win(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: m1\nbatch_size: 4\nrate: 3\nsteps: [10, 2]\nsample: true\nextra: {bf16: true}\nsource: a\n"
    )
    from_file = parse(["--config", str(config)])
    assert (from_file.model, from_file.batch_size, from_file.rate, from_file.steps) == ("m1", 4, 3.0, (10, 2))
    assert from_file.sample is True and from_file.extra == {"bf16": True} and from_file.source == "a"
    assert isinstance(from_file.rate, float)
    flags = ["--batch-size", "2", "--steps", "7", "--no-sample", "--in", "x.json"]
    extra = ["--extra-arg", "lr=1e-4", "--extra-arg", "name=abc", "--extra-arg", "n=3"]
    both = parse(["--config", str(config), *flags, *extra])
    assert (both.model, both.batch_size, both.steps, both.sample, both.source) == ("m1", 2, (7,), False, "x.json")
    assert both.extra == {"lr": 1e-4, "name": "abc", "n": 3}  # 1e-4 a number, not YAML 1.1's string
    defaults = parse(["--model", "m"])
    assert (defaults.batch_size, defaults.mode, defaults.steps, defaults.sample, defaults.extra) == (
        8,
        "greedy",
        (0, 5),
        False,
        None,
    )


def test_precedence_default_yaml_key_value_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: m\nbatch_size: 4\nrate: 0.5\nmode: sample\n")
    assert parse([str(config)]).batch_size == 4  # YAML over the default
    chosen = parse([str(config), "batch_size=3", "rate=0.25", "--batch-size", "2"])
    assert (chosen.batch_size, chosen.rate, chosen.mode, chosen.steps) == (2, 0.25, "sample", (0, 5))
    assert parse([str(config), "steps=1,2", "batch_size=null"]).steps == (1, 2)
    assert parse([str(config), "batch_size=null"]).batch_size == 8  # unset: back to the default
    assert parse(["--config", str(config), "batch_size=5"]).batch_size == 5  # the older --config form


@pytest.mark.parametrize(
    ("text", "expected"),
    [(word, True) for word in ("yes", "true", "t", "y", "1", "TRUE", "Yes")]
    + [(word, False) for word in ("no", "false", "f", "n", "0", "False", "NO")],
)
def test_booleans_are_spelled_as_hfargumentparser_spells_them(text, expected):
    from transformers.hf_argparser import string_to_bool

    assert string_to_bool(text) is expected  # the rule we follow
    sample = Setting("sample", bool)
    assert sample.coerce(text, "command line") is expected  # key=value
    assert Example(model="m", sample=text).sample is expected  # Python
    assert read_values(Example, [(METADATA, {"model": "m", "sample": text})])["sample"] is expected  # metadata
    assert parse(["--model", "m", f"sample={text}"]).sample is expected


@pytest.mark.parametrize(
    ("declared", "value", "expected"),
    [
        (Setting("n", int), "4", 4),
        (Setting("n", int), 4.0, 4),
        (Setting("x", float), "1e-4", 1e-4),
        (Setting("x", float), 3, 3.0),
        (Setting("s", str), 12, "12"),
        (Setting("s", str | None), "null", None),
        (Setting("s", str | None), "None", None),
        (Setting("p", Path), "a/b", Path("a/b")),
        (Setting("l", tuple[int, ...]), "1, 2,3", (1, 2, 3)),
        (Setting("l", tuple[str, ...]), ["a", 1], ("a", "1")),
        (Setting("l", tuple[str, ...]), "one", ("one",)),
        (Setting("d", dict[str, Any]), ["a=1", "b=x"], {"a": 1, "b": "x"}),
    ],
)
def test_one_coercion_for_every_source(declared, value, expected):
    assert declared.coerce(value, "x.yaml") == expected


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        (Setting("n", int), "4.5", "x.yaml: key 'n': expected an integer, got '4.5'"),
        (Setting("n", int), True, "x.yaml: key 'n': expected an integer, got True"),
        (Setting("s", str), False, "x.yaml: key 's': expected a string (quote it), got False"),
        (Setting("b", bool), "maybe", "x.yaml: key 'b': expected true or false, got 'maybe'"),
        (Setting("n", int, minimum=1), 0, "x.yaml: key 'n' must be >= 1, got 0"),
        (Setting("x", float, minimum=0, exclusive_minimum=True), 0, "x.yaml: key 'x' must be > 0, got 0.0"),
        (Setting("m", str, choices=("a", "b")), "c", "x.yaml: key 'm' must be one of a, b, got 'c'"),
        (Setting("e", int, check=lambda v: None if v % 2 == 0 else "must be even"), 3, "key 'e' must be even, got 3"),
    ],
)
def test_bad_values_name_the_source_and_the_key(declared, value, message):
    with pytest.raises(SafeEraserError) as caught:
        declared.coerce(value, "x.yaml")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("config_text", "argv", "message"),
    [
        (
            "model: m\nbatch: 3\n",
            [],
            r"c\.yaml: unknown key 'batch' \(did you mean 'batch_size'\?\); valid keys: model",
        ),
        ("model: m\nbatch_size: many\n", [], r"c\.yaml: key 'batch_size': expected an integer"),
        ("model: m\nsteps: [1, -2]\n", [], r"c\.yaml: key 'steps' must be >= 0, got -2"),
        ("model: m\nmode: beam\n", [], r"c\.yaml: key 'mode' must be one of greedy, sample, got 'beam'"),
        ("model: [m\n", [], r"c\.yaml: invalid YAML \(line 2\)"),
        ("- model\n", [], r"c\.yaml: expected a mapping of keys to values"),
        ("model: m\nsample: maybe\n", [], r"c\.yaml: key 'sample': expected true or false"),
        ("model: m\n", ["--batch-size", "0"], r"command line: key 'batch_size' must be >= 1, got 0"),
        ("model: m\n", ["--rate", "fast"], r"command line: key 'rate': expected a number"),
        ("model: m\n", ["--extra-arg", "novalue"], r"command line: key 'extra': expected KEY=VALUE, got 'novalue'"),
        ("model: m\n", ["tool_size=0"], r"command line: key 'tool_size' must be >= 1, got 0"),
        ("model: m\n", ["limit"], r"command line: expected CONFIG.yaml or key=value, got 'limit'"),
        ("batch_size: 2\n", [], r"c\.yaml: key 'model' must be set \(in the YAML file, as model=\.\.\., or with --mod"),
    ],
)
def test_bad_values_are_one_line_naming_the_file_or_flag_and_the_key(tmp_path, config_text, argv, message):
    config = tmp_path / "c.yaml"
    config.write_text(config_text)
    with pytest.raises(SafeEraserError, match=message) as caught:
        parse([str(config), *argv])
    assert "\n" not in str(caught.value)


def test_python_callers_get_the_same_checks():
    with pytest.raises(SafeEraserError, match=r"Example: key 'batch_size' must be >= 1, got 0"):
        Example(model="m", batch_size=0)
    assert Example(model="m", steps=[3, 1]).steps == (3, 1)  # normalised to the declared tuple
    for unset in ({}, {"model": "m", "batch_size": None}):
        with pytest.raises(SafeEraserError, match=r"^Example: key '(model|batch_size)' must be set$"):
            Example(**unset)
    with pytest.raises(SafeEraserError, match=r"Example: 'tool' must be a Inner"):
        Example(model="m", tool="b")


def test_a_group_is_one_class_whose_keys_share_a_prefix():
    assert [key.name for key in keys_of(Example)][-2:] == ["tool", "tool_size"]  # `name` names its own key
    chosen = parse(["--model", "m", "tool=b", "--tool-size", "3"])
    assert chosen.tool == Inner("b", 3)
    assert parse(["--model", "m"]).tool == Inner()


def test_the_judge_keys_are_one_group_in_eval_relearn_and_lm_eval_metadata():
    from llamafactory_safeeraser.evaluation.config import EvalCommand

    judge_keys = [key.name for key in keys_of(EvalCommand) if key.path[:2] == ("settings", "judge")]
    assert judge_keys[:3] == ["judge", "judge_model", "judge_base_url"] and judge_keys[-1] == "rule_asr_overlap"
    assert [key.name for key in keys_of(RelearnCommand) if key.path[0] == "judge"] == judge_keys
    metadata = {"judge": "openai", "judge_model": "m", "judge_base_url": "http://h/v1", "judge_cache": "off"}
    metadata |= {"judge_timeout": "30", "judge_max_retries": "2", "rule_asr_overlap": "0.25", "other": "kept out"}
    expected = JudgeConfig("openai", "m", "http://h/v1", "off", timeout=30.0, max_retries=2, asr_overlap=0.25)
    assert JudgeConfig.from_metadata(metadata) == expected
    assert TaskOptions.from_metadata(metadata).judge == expected
    with pytest.raises(SafeEraserError, match=r"^metadata 'judge_max_retries': expected an integer, got '2.5'$"):
        JudgeConfig.from_metadata({**metadata, "judge_max_retries": "2.5"})
    with pytest.raises(SafeEraserError, match=r"^metadata 'harmful_samples' must be >= 1, got 0$"):
        TaskOptions.from_metadata({"harmful_samples": "0"})


def test_hf_fields_are_generated_from_the_declarations():
    from llamafactory_safeeraser.unlearn.arguments import GENERAL_SETTINGS, UnlearningArguments

    toy = hf_dataclass(
        "Toy", [Setting("alpha", float | None, None, "a weight"), Setting("on", bool, True, "on?")], __name__
    )
    assert [(f.name, f.type, f.default, dict(f.metadata)) for f in dataclasses.fields(toy)] == [
        ("alpha", float | None, None, {"help": "a weight"}),
        ("on", bool, True, {"help": "on?"}),
    ]
    assert pickle.loads(pickle.dumps(UnlearningArguments(unlearn_method="ga"))).unlearn_method == "ga"
    fields = {f.name: f for f in dataclasses.fields(UnlearningArguments)}
    assert list(fields) == [declared.name for declared in GENERAL_SETTINGS]
    for declared in GENERAL_SETTINGS:
        assert (fields[declared.name].default, dict(fields[declared.name].metadata)) == (
            declared.default,
            {"help": declared.help},
        )


@pytest.mark.parametrize(("command", "cls"), [("respond", RespondSettings), ("relearn", RelearnCommand)])
def test_help_lists_every_declared_key(command, cls, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "-h"])
    text = " ".join(capsys.readouterr().out.split())
    for item in keys_of(cls):
        assert item.setting.flag in text and f"YAML key '{item.name}'" in text, item.name


def test_cli_reports_a_bad_config_in_one_line_with_exit_code_2(tmp_path, capsys, synthetic_dir):
    config = tmp_path / "respond.yaml"
    config.write_text(f"model: m\ninput: {synthetic_dir / 'all_train.json'}\nout: {tmp_path / 'out'}\nbatch_size: -1\n")
    assert main(["respond", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"safeeraser: error: {config}: key 'batch_size' must be >= 1, got -1"
    assert main(["respond", str(config), "batch_size=2", "do_sample=maybe"]) == 2  # the one grammar
    err = capsys.readouterr().err.strip()
    assert err == "safeeraser: error: command line: key 'do_sample': expected true or false, got 'maybe'"
    assert not (tmp_path / "out").exists()


def test_unknown_key_is_one_line_with_a_suggestion_and_the_valid_keys(capsys):
    assert main(["prepare", "trian=x.json", "out=o"]) == 2
    err = capsys.readouterr().err.strip()
    names = ", ".join(key.name for key in keys_of(SETTINGS["prepare"]))
    assert err == f"safeeraser: error: command line: unknown key 'trian' (did you mean 'train'?); valid keys: {names}"


# ----- the docs -----------------------------------------------------------------------------------------------
DOCS = ("docs/evaluation.md", "docs/training.md", "docs/demo.md", "docs/models.md", "README.md")


def test_every_command_has_its_key_table_in_the_docs_and_it_is_the_declared_one():
    text = "\n".join((REPO / path).read_text() for path in DOCS)
    for command, cls in SETTINGS.items():
        match = re.search(
            rf"<!-- {command} keys: generated by `safeeraser config-keys {command}` -->\n(.*?)\n\n", text + "\n\n", re.S
        )
        assert match, f"the docs lack the {command} key table"
        assert match.group(1) == markdown_table(cls), command
    assert set(COMMANDS) == set(SETTINGS)
    proc = run_cli(["safeeraser", "config-keys", "prepare"], timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == markdown_table(SETTINGS["prepare"])


def test_building_the_command_line_loads_neither_llamafactory_nor_torch():
    """The parser of every command (respond and relearn included) must come up at once: -h, one-line errors."""
    import subprocess
    import sys

    code = (
        "import sys, llamafactory_safeeraser.cli as c; c.build_parser(); "
        "print(sorted({'llamafactory', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
