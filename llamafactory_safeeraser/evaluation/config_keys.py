"""Configuration keys declared once (name, type, default, help), read from YAML, ``key=value`` and flags.

A command lists its keys as :class:`ConfigKey` values. From those declarations come its command-line flags
(:func:`add_flags`), the reading and checking of a YAML file plus ``key=value`` overrides (:func:`read_config`)
and the key table in the docs (:func:`markdown_table`). Precedence, lowest first: the key's default, the YAML
file, ``key=value`` overrides, flags.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import SafeEraserError

CONFIG_SUFFIXES = (".yaml", ".yml")
_NONE_WORDS = ("null", "none", "~")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: type  # str, int, float, bool or list (of str)
    default: Any  # None: unset (the help says what that means)
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    required: bool = False
    flags: tuple[str, ...] = ()  # flag names besides --<name-with-dashes> (the older flag form)

    def coerce(self, value: Any, where: str) -> Any:
        """``value`` (from YAML, or a string from the command line) as this key's type; raises on a bad one."""
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            if self.required:
                raise SafeEraserError(f"{where}: key '{self.name}' must be set")
            return None
        converted = self._convert(value, where)
        if self.choices and converted not in self.choices:
            raise SafeEraserError(
                f"{where}: key '{self.name}' must be one of {', '.join(self.choices)}, got {converted!r}"
            )
        if self.minimum is not None and converted < self.minimum:
            raise SafeEraserError(f"{where}: key '{self.name}' must be >= {self.minimum:g}, got {converted!r}")
        return converted

    def _convert(self, value: Any, where: str) -> Any:
        def bad(expected: str) -> SafeEraserError:
            return SafeEraserError(f"{where}: key '{self.name}': expected {expected}, got {value!r}")

        if self.type is list:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list) or not all(isinstance(item, str | int | float) for item in value):
                raise bad("a list")
            return [str(item) for item in value]
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE_WORDS + _FALSE_WORDS:
                return value.lower() in _TRUE_WORDS
            raise bad("true or false")
        if isinstance(value, bool):  # YAML reads `off`, `yes` as booleans: never a number or a string here
            raise bad(f"{'a string (quote it)' if self.type is str else 'a number'}")
        if self.type is str:
            if isinstance(value, list | dict):
                raise bad("a string")
            return str(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("an integer" if self.type is int else "a number") from None
        if self.type is int:
            if number != int(number):
                raise bad("an integer")
            return int(number)
        return number

    @property
    def flag_names(self) -> list[str]:
        return [f"--{self.name.replace('_', '-')}", *self.flags]

    @property
    def values_text(self) -> str:
        if self.choices:
            return " \\| ".join(f"`{choice}`" for choice in self.choices)
        kind = {str: "text", int: "integer", float: "number", bool: "true/false", list: "list"}[self.type]
        return kind + (f" >= {self.minimum:g}" if self.minimum is not None else "")


def add_flags(parser: argparse.ArgumentParser, keys: Sequence[ConfigKey]) -> None:
    """One flag per key (plus its older names); a flag left out does not override the YAML file."""
    for key in keys:
        options: dict[str, Any] = {"dest": key.name, "default": argparse.SUPPRESS, "help": key.help}
        if key.type is list:
            options["nargs"] = "+"
        elif key.choices:
            options["choices"] = list(key.choices)
        parser.add_argument(*key.flag_names, **options)


def _unknown_key(name: str, where: str, keys: Sequence[ConfigKey]) -> SafeEraserError:
    names = [key.name for key in keys]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return SafeEraserError(f"{where}: unknown key '{name}'{hint}; valid keys: {', '.join(names)}")


def _load_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.suffix not in CONFIG_SUFFIXES:
        raise SafeEraserError(f"{path}: not a YAML config (expected a {' or '.join(CONFIG_SUFFIXES)} file)")
    if not path.is_file():
        raise SafeEraserError(f"{path}: file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        reason = str(err).replace("\n", " ")
        raise SafeEraserError(f"{path}: not valid YAML ({reason})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SafeEraserError(f"{path}: expected a mapping of keys to values, got {type(loaded).__name__}")
    return loaded


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``key=value`` strings as a mapping (values stay strings; :meth:`ConfigKey.coerce` types them)."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SafeEraserError(f"command line: expected key=value, got {item!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def read_config(
    keys: Sequence[ConfigKey],
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every key's value: default < YAML file < ``key=value`` overrides < flags. One-line errors name the file
    (or the command line) and the key."""
    by_name = {key.name: key for key in keys}
    values = {key.name: key.default for key in keys}
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        sources.append((str(config_file), _load_file(config_file)))
    sources.append(("command line", parse_overrides(overrides)))
    sources.append(("command line", dict(flags or {})))
    for where, given in sources:
        for name, value in given.items():
            if name not in by_name:
                raise _unknown_key(str(name), where, keys)
            values[name] = by_name[name].coerce(value, where)
    where = str(config_file) if config_file is not None else "command line"
    for key in keys:
        if key.required and values[key.name] is None:
            flag = key.flag_names[-1]
            raise SafeEraserError(
                f"{where}: key '{key.name}' must be set (in the YAML file, as {key.name}=..., or with {flag})"
            )
    return values


def markdown_table(keys: Sequence[ConfigKey]) -> str:
    """The key table of the docs: key, default, values, meaning."""
    lines = ["| key | default | values | meaning |", "|---|---|---|---|"]
    for key in keys:
        shown = ", ".join(key.default) if isinstance(key.default, list) else key.default
        default = "required" if key.required else ("-" if key.default is None else f"`{shown}`")
        meaning = key.help.replace("|", "\\|")
        lines.append(f"| `{key.name}` | {default} | {key.values_text} | {meaning} |")
    return "\n".join(lines)
