"""Settings declared once (options.key): flags, a YAML config, checks and help from one declaration."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import pytest

from llamafactory_safeeraser.cli import build_parser, main
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.options import add_arguments, check_settings, from_arguments, key, keys_of
from llamafactory_safeeraser.relearn.settings import RelearnCommand
from llamafactory_safeeraser.respond.settings import RespondSettings


@dataclass(frozen=True)
class Example:
    model: str | None = key(help="the model", required=True)
    batch_size: int = key(8, help="batch", minimum=1)
    rate: float = key(1.0e-4, help="rate", minimum=0)
    mode: str = key("greedy", help="mode", choices=("greedy", "sample"))
    steps: tuple[int, ...] = key((0, 5), help="steps", minimum=0)
    sample: bool = key(False, help="sample")
    extra: dict[str, Any] | None = key(help="extra keys", flag="--extra-arg")
    source: str | None = key(help="input", flag="--in")

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


@pytest.mark.parametrize(
    ("config_text", "argv", "message"),
    [
        ("model: m\nbatch: 3\n", [], r"c\.yaml: unknown key 'batch'; valid keys: model, batch_size, rate"),
        ("model: m\nbatch_size: many\n", [], r"c\.yaml: key 'batch_size': expected an integer"),
        ("model: m\nsteps: [1, -2]\n", [], r"c\.yaml: key 'steps': must be >= 0, got -2"),
        ("model: m\nmode: beam\n", [], r"c\.yaml: key 'mode': 'beam' is not one of greedy, sample"),
        ("model: [m\n", [], r"c\.yaml: invalid YAML \(line 2\)"),
        ("- model\n", [], r"c\.yaml: expected a mapping of keys to values"),
        ("model: m\nsample: maybe\n", [], r"c\.yaml: key 'sample': expected true or false"),
        ("model: m\n", ["--batch-size", "0"], r"--batch-size: must be >= 1, got 0"),
        ("model: m\n", ["--rate", "fast"], r"--rate: expected a number"),
        ("model: m\n", ["--extra-arg", "novalue"], r"--extra-arg: expected KEY=VALUE, got 'novalue'"),
        ("batch_size: 2\n", [], r"missing key 'model': pass --model or set it in the --config file"),
    ],
)
def test_bad_values_are_one_line_naming_the_file_or_flag_and_the_key(tmp_path, config_text, argv, message):
    config = tmp_path / "c.yaml"
    config.write_text(config_text)
    with pytest.raises(SafeEraserError, match=message) as caught:
        parse(["--config", str(config), *argv])
    assert "\n" not in str(caught.value)


def test_python_callers_get_the_same_checks():
    with pytest.raises(SafeEraserError, match=r"key 'batch_size' \(--batch-size\): must be >= 1, got 0"):
        Example(model="m", batch_size=0)
    assert Example(model="m", steps=[3, 1]).steps == (3, 1)  # normalised to the declared tuple


@pytest.mark.parametrize(("command", "cls"), [("respond", RespondSettings), ("relearn", RelearnCommand)])
def test_help_lists_every_declared_key(command, cls, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "-h"])
    text = " ".join(capsys.readouterr().out.split())
    for item in keys_of(cls):
        assert item.flag in text and f"YAML key '{item.name}'" in text, item.name


def test_cli_reports_a_bad_config_in_one_line_with_exit_code_2(tmp_path, capsys, synthetic_dir):
    config = tmp_path / "respond.yaml"
    config.write_text(f"model: m\ninput: {synthetic_dir / 'all_train.json'}\nout: {tmp_path / 'out'}\nbatch_size: -1\n")
    assert main(["respond", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"safeeraser: error: {config}: key 'batch_size': must be >= 1, got -1"
    assert not (tmp_path / "out").exists()


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
