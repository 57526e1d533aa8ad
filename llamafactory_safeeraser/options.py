"""A command's settings declared once: a frozen dataclass whose fields say their type, default, help and checks.

``key(...)`` declares a field. From the class come the command-line flags (:func:`add_arguments`; the flag of
``batch_size`` is ``--batch-size``), a YAML config file of the same keys (``--config FILE``; a flag given on
the command line wins over the file), the checks (:func:`check_settings`, which the class runs in its
``__post_init__`` so that Python callers get them too) and the ``-h`` text.

Field types: ``str``, ``int``, ``float``, ``bool``, any of them ``| None``, ``tuple[int, ...]`` /
``tuple[str, ...]`` (several values after the flag, a YAML list) and ``dict[str, Any]`` (YAML mapping;
``--flag KEY=VALUE`` repeated). Relative paths in a config file are taken from the working directory, as
LLaMA-Factory takes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import SafeEraserError

CONFIG_FLAG = "--config"


@dataclasses.dataclass(frozen=True)
class KeySpec:
    help: str
    required: bool = False
    choices: tuple[Any, ...] = ()
    minimum: float | None = None  # inclusive; for a tuple, of every element
    flag: str | None = None  # the flag when it is not --<name with dashes>


def key(
    default: Any = None,
    *,
    help: str,
    required: bool = False,
    choices: tuple[Any, ...] = (),
    minimum: float | None = None,
    flag: str | None = None,
) -> Any:
    """A settings field: ``default``, and how the field is asked for and checked."""
    spec = KeySpec(help, required, tuple(choices), minimum, flag)
    return dataclasses.field(default=default, metadata={"key": spec})


@dataclasses.dataclass(frozen=True)
class _Key:
    name: str
    spec: KeySpec
    base: type  # str, int, float, bool, tuple or dict
    element: type | None  # a tuple's element type
    optional: bool
    default: Any

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")


def keys_of(cls: type) -> list[_Key]:
    """The declared keys of a settings class, in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for item in dataclasses.fields(cls):
        spec = item.metadata.get("key")
        if spec is None:
            continue
        base, element, optional = _parse_type(hints[item.name], f"{cls.__name__}.{item.name}")
        found.append(_Key(item.name, spec, base, element, optional, item.default))
    return found


def _parse_type(hint: Any, where: str) -> tuple[type, type | None, bool]:
    args = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        rest = [arg for arg in args if arg is not type(None)]
        hint, args = rest[0], typing.get_args(rest[0])
    origin = typing.get_origin(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (int, str, float):
        return tuple, args[0], optional
    if origin is dict or hint is dict:
        return dict, None, optional
    if hint in (str, int, float, bool):
        return hint, None, optional
    raise TypeError(f"{where}: unsupported settings type {hint!r}")


# ----- values -------------------------------------------------------------------------------------------
def _scalar(kind: type, value: Any) -> Any:
    """``value`` as ``kind``; raises ValueError with what was expected."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("expected true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError("expected an integer")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError("expected a number")
    if isinstance(value, (str, Path)):
        return str(value)
    raise ValueError("expected a string")


def _yaml_value(text: str) -> Any:
    """A KEY=VALUE flag's value: a number where it reads as one (YAML 1.1 keeps 1e-4 a string), else YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def convert(item: _Key, value: Any) -> Any:
    """``value`` (from YAML, a flag or Python) as the key's type, checked; raises ValueError saying why not."""
    if value is None:
        return None
    if item.base is tuple:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        converted = tuple(_scalar(item.element, v) for v in values)  # type: ignore[arg-type]
        for element in converted:
            _check_scalar(item, element)
        return converted
    if item.base is dict:
        if isinstance(value, (list, tuple)):  # KEY=VALUE strings from the command line
            pairs = {}
            for entry in value:
                name, sep, text = str(entry).partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"expected KEY=VALUE, got {entry!r}")
                pairs[name.strip()] = _yaml_value(text)
            return pairs
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError("expected a mapping of keys to values")
        return dict(value)
    converted = _scalar(item.base, value)
    _check_scalar(item, converted)
    return converted


def _check_scalar(item: _Key, value: Any) -> None:
    if item.spec.choices and value not in item.spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, item.spec.choices))}")
    if item.spec.minimum is not None and value < item.spec.minimum:
        raise ValueError(f"must be >= {item.spec.minimum:g}, got {value!r}")


def check_settings(settings: Any) -> None:
    """Every declared key of ``settings`` has a value of its type that passes its checks (else SafeEraserError)."""
    for item in keys_of(type(settings)):
        value = getattr(settings, item.name)
        if value is None:
            if item.spec.required:
                where = f"pass {item.flag} or set it in the {CONFIG_FLAG} file"
                raise SafeEraserError(f"missing key '{item.name}': {where}")
            continue
        try:
            checked = convert(item, value)
        except ValueError as err:
            raise SafeEraserError(f"key '{item.name}' ({item.flag}): {err}") from None
        object.__setattr__(settings, item.name, checked)  # normalised: tuples, floats from ints


# ----- the command line -----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config`` and one flag per declared key of ``cls``."""
    parser.add_argument(CONFIG_FLAG, default=None, metavar="FILE.yaml", help="YAML file of the keys below (flags win)")
    for item in keys_of(cls):
        shown = " [required]" if item.spec.required else f" (default: {_shown_default(item.default)})"
        choices = f" {{{', '.join(map(str, item.spec.choices))}}}" if item.spec.choices else ""
        text = f"{item.spec.help}{choices}{shown}; YAML key '{item.name}'"
        how: dict[str, Any] = {"metavar": item.name.upper()}
        if item.base is bool:
            how = {"action": argparse.BooleanOptionalAction}
        elif item.base is tuple:
            how = {"nargs": "+", "metavar": "V"}
        elif item.base is dict:
            how = {"action": "append", "metavar": "KEY=VALUE"}
        parser.add_argument(item.flag, dest=item.name, default=None, help=text, **how)


def _shown_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_config(path: str | Path, cls: type) -> dict[str, Any]:
    """The keys of a YAML config file, converted and checked; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise SafeEraserError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SafeEraserError(f"{path}: invalid YAML{where}") from None
    except UnicodeDecodeError:
        raise SafeEraserError(f"{path}: not UTF-8 text") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SafeEraserError(f"{path}: expected a mapping of keys to values")
    items = {item.name: item for item in keys_of(cls)}
    values = {}
    for name, value in loaded.items():
        if name not in items:
            raise SafeEraserError(f"{path}: unknown key '{name}'; valid keys: {', '.join(items)}")
        try:
            values[name] = convert(items[name], value)
        except ValueError as err:
            raise SafeEraserError(f"{path}: key '{name}': {err}") from None
    return values


def from_arguments(cls: type, args: argparse.Namespace) -> Any:
    """Settings from a config file (``--config``) and the flags given (they win); every problem one line."""
    values = read_config(args.config, cls) if getattr(args, "config", None) else {}
    for item in keys_of(cls):
        given = getattr(args, item.name, None)
        if given is None:
            continue
        try:
            values[item.name] = convert(item, given)
        except ValueError as err:
            raise SafeEraserError(f"{item.flag}: {err}") from None
    return cls(**values)
