"""Every `safeeraser` command in README.md, docs/*.md and examples/*.md parses as written, and every shipped eval
YAML passes the command's own config validation. Checked by parsing, not run: most need a GPU, the real
dataset or an earlier step's output (the CPU commands run in tests/e2e/test_demo.py and tests/test_output_folders.py).
"""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO

from llamafactory_safeeraser.cli import build_parser
from llamafactory_safeeraser.evaluation.config import EvalCommand
from llamafactory_safeeraser.settings import from_arguments

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "examples").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for each `safeeraser ...` line of a fenced code block (continuations joined)."""
    found = []
    for path in DOCS:
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            text = re.sub(r"\\\n\s*", " ", block)
            for line in text.splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("safeeraser "):
                    found.append((path.name, line))
    return found


COMMANDS = documented_commands()


def test_the_docs_hold_commands():
    assert len(COMMANDS) >= 10 and {"README.md"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{n}:{c[:60]}" for n, c in COMMANDS])
def test_documented_command_parses(where, command):
    argv = shlex.split(command, comments=True)[1:]
    argv = [arg for arg in argv if arg not in ("|", "&&")]
    args = build_parser().parse_args(argv)  # exits (SystemExit) on an unknown command, flag or value
    if args.command == "eval" and args.config and args.config.endswith(".yaml"):
        config = REPO / args.config
        assert config.is_file(), f"{where}: {args.config} is not a shipped file"
        args.overrides = [o for o in args.overrides if "..." not in o]
        args.config = str(config)
        from_arguments(EvalCommand, args)  # the command's own validation


@pytest.mark.parametrize("path", sorted((REPO / "yaml").glob("eval_*.yaml")), ids=lambda p: p.name)
def test_shipped_eval_yaml_validates(path):
    from_arguments(EvalCommand, build_parser().parse_args(["eval", str(path)]))
