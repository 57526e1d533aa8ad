"""Settings declared once: name, type, default, check and help, for every command and every unlearning method.

A command's settings are a frozen dataclass whose fields are :func:`setting` declarations (the type comes from
the annotation) or :func:`group` fields (another settings class whose keys share a prefix, such as the judge's
``judge``, ``judge_model``, ...). A method's keys are :class:`Setting` values with their name and type spelled
out (``params``). From the declarations come:

- the command line, LLaMA-Factory's grammar: ``safeeraser CMD [CONFIG.yaml] [key=value ...]``, plus one flag per
  key (``--batch-size``, and older names such as ``--out``) as an alias (:func:`add_arguments`,
  :func:`from_arguments`). Precedence, lowest first: default, YAML file, ``key=value``, flags;
- the reading of lm-eval metadata and of Python arguments (:func:`read_values`, :func:`check_settings`);
- the key tables of the docs (:func:`markdown_table`) and the fields LLaMA-Factory's HfArgumentParser sees
  (:func:`hf_field`).

One coercion rule for every source: booleans as HfArgumentParser spells them (yes/no, true/false, t/f, y/n, 1/0,
any case), ``null``/``none``/``~`` is unset, a comma-separated string is a list. Every problem is one
SafeEraserError line naming the source (the file, ``command line``, ``metadata``) and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import SafeEraserError

CONFIG_SUFFIXES = (".yaml", ".yml")
COMMAND_LINE = "command line"
METADATA = "metadata"
TRUE_WORDS = ("yes", "true", "t", "y", "1")  # transformers.hf_argparser.string_to_bool
FALSE_WORDS = ("no", "false", "f", "n", "0")
NONE_WORDS = ("null", "none", "~")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key. In a settings class ``name`` and ``type`` come from the field; a method spells them out."""

    name: str = ""  # the key in YAML, key=value and metadata ("": the field's name, after its group's prefix)
    type: Any = str  # str, int, float, bool, Path, tuple[X, ...], dict[str, Any], any of them | None
    default: Any = None  # None: unset (the help says what that means)
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    exclusive_minimum: bool = False  # value > minimum rather than >=
    required: bool = False
    check: Callable[[Any], str | None] | None = None  # a further check: why the value is wrong, or None
    flags: tuple[str, ...] = ()  # flag aliases besides --<name-with-dashes>
    parse: Callable[[Any], Any] | None = None  # a key whose text has its own grammar: text -> value
    const: Any = None  # a list key's flag given without values means this (None: at least one value)
    positional: bool = False  # the command's bare arguments (neither CONFIG.yaml nor key=value) fill it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flag_names(self) -> list[str]:
        return [self.flag, *(flag for flag in self.flags if flag != self.flag)]

    @property
    def kind(self) -> tuple[type, type | None, bool]:
        """(base type, a tuple's element type, whether None is allowed)."""
        return _parse_type(self.type, self.name)

    @property
    def constraint(self) -> str:
        if self.choices:
            return " | ".join(map(str, self.choices))
        if self.minimum is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        return ""

    def problem(self, value: Any) -> str | None:
        """Why a value of the right type is not acceptable ("must be ..."), or None."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        if self.minimum is not None:
            if self.exclusive_minimum and not value > self.minimum:
                return f"must be > {self.minimum:g}"
            if not self.exclusive_minimum and not value >= self.minimum:
                return f"must be >= {self.minimum:g}"
        return self.check(value) if self.check is not None else None

    def same_key_as(self, other: Setting) -> bool:
        """Whether two declarations of one name agree on all but the default and the help."""
        return (self.type, self.choices, self.minimum, self.exclusive_minimum) == (
            other.type,
            other.choices,
            other.minimum,
            other.exclusive_minimum,
        )

    def coerce(self, value: Any, source: str) -> Any:
        """``value`` from ``source`` as this key's type, checked; a SafeEraserError names the source and key."""
        where = _where(source, self.name)
        base, element, _ = self.kind
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS and base is not dict):
            return None
        try:
            if self.parse is not None:
                value = self.parse(value)
            if base is tuple:
                converted: Any = tuple(_scalar(element, item) for item in _items(value))  # type: ignore[arg-type]
                checked = converted  # every element
            elif base is dict:
                converted, checked = _mapping(value), ()
            else:
                converted = _scalar(base, value)
                checked = (converted,)
        except ValueError as err:
            said = str(err) if ", got " in str(err) else f"{err}, got {value!r}"
            raise SafeEraserError(f"{where}: {said}") from None
        for item in checked:
            problem = self.problem(item)
            if problem is not None:
                raise SafeEraserError(f"{where} {problem}, got {item!r}")
        return converted


def _where(source: str, name: str) -> str:
    return f"metadata '{name}'" if source == METADATA else f"{source}: key '{name}'"


def _parse_type(hint: Any, where: str) -> tuple[type, type | None, bool]:
    args = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        rest = [arg for arg in args if arg is not type(None)]
        hint, args = rest[0], typing.get_args(rest[0])
    origin = typing.get_origin(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (int, str, float, Path):
        return tuple, args[0], optional
    if origin is dict or hint is dict:
        return dict, None, optional
    if hint in (str, int, float, bool, Path):
        return hint, None, optional
    raise TypeError(f"{where}: unsupported settings type {hint!r}")


# ----- the one coercion rule -------------------------------------------------------------------------------
_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def _scalar(kind: type, value: Any) -> Any:
    """``value`` as ``kind``; raises ValueError saying what was expected."""
    expected = ValueError(f"expected {_EXPECTED[kind]}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise expected
    if isinstance(value, bool):  # YAML reads `off`, `yes` as booleans: never a number or a string here
        raise ValueError("expected a string (quote it)") if kind in (str, Path) else expected
    if kind in (str, Path):
        if isinstance(value, (list, tuple, dict)):
            raise expected
        return kind(value)
    if not isinstance(value, (int, float, str)):
        raise expected
    try:
        number = float(value)
    except ValueError:
        raise expected from None
    if kind is int:
        if number != int(number):
            raise expected
        return int(number)
    return number


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def yaml_value(text: str) -> Any:
    """A KEY=VALUE text's value: a number where it reads as one (YAML 1.1 keeps 1e-4 a string), else YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, (list, tuple, str)):  # KEY=VALUE texts from the command line
        pairs = {}
        for entry in [value] if isinstance(value, str) else value:
            name, sep, text = str(entry).partition("=")
            if not sep or not name.strip():
                raise ValueError(f"expected KEY=VALUE, got {entry!r}")
            pairs[name.strip()] = yaml_value(text)
        return pairs
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("expected a mapping of keys to values")
    return dict(value)


# ----- declaring settings classes ----------------------------------------------------------------------------
def setting(
    default: Any = None,
    *,
    help: str,
    name: str = "",
    choices: Iterable[Any] = (),
    minimum: float | None = None,
    exclusive_minimum: bool = False,
    required: bool = False,
    check: Callable[[Any], str | None] | None = None,
    flags: tuple[str, ...] = (),
    parse: Callable[[Any], Any] | None = None,
    const: Any = None,
    positional: bool = False,
) -> Any:
    """A settings-class field: its default, and how it is asked for and checked (the type: its annotation)."""
    declared = Setting(
        name=name,
        default=default,
        help=help,
        choices=tuple(choices),
        minimum=minimum,
        exclusive_minimum=exclusive_minimum,
        required=required,
        check=check,
        flags=flags,
        parse=parse,
        const=const,
        positional=positional,
    )
    return dataclasses.field(default=default, metadata={"setting": declared})


def shared(cls: type, field_name: str, **changes: Any) -> Any:
    """A field declared as ``cls``'s ``field_name`` is (its key name aside), with ``changes`` (a default, a help)."""
    (field,) = [item for item in dataclasses.fields(cls) if item.name == field_name]
    declared = dataclasses.replace(field.metadata["setting"], name="", **changes)
    return dataclasses.field(default=declared.default, metadata={"setting": declared})


@dataclasses.dataclass(frozen=True)
class _Group:
    prefix: str


def group(cls: type, prefix: str = "") -> Any:
    """A field holding another settings class, whose keys are its fields' with ``prefix`` (unless named)."""
    return dataclasses.field(default_factory=cls, metadata={"group": _Group(prefix)})


@dataclasses.dataclass(frozen=True)
class Key:
    """A declared key of a settings class: the declaration and where its value goes (field names)."""

    setting: Setting
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.setting.name


@functools.cache
def _own_settings(cls: type) -> dict[str, Setting]:
    """``cls``'s setting fields (groups left out), by field name, with their types filled in."""
    hints = typing.get_type_hints(cls)
    found = {}
    for item in dataclasses.fields(cls):
        declared = item.metadata.get("setting")
        if declared is not None:
            found[item.name] = dataclasses.replace(declared, name=declared.name or item.name, type=hints[item.name])
    return found


@functools.cache
def _group_class(cls: type, field_name: str) -> type:
    return typing.get_type_hints(cls)[field_name]


@functools.cache
def keys_of(cls: type, prefix: str = "") -> tuple[Key, ...]:
    """Every key of a settings class, groups flattened, in declaration order."""
    own = _own_settings(cls)
    hints = typing.get_type_hints(cls)
    found: list[Key] = []
    for item in dataclasses.fields(cls):
        if item.name in own:
            declared = own[item.name]
            named = declared.name if item.metadata["setting"].name else prefix + item.name
            found.append(Key(dataclasses.replace(declared, name=named), (item.name,)))
        elif "group" in item.metadata:
            inner = keys_of(hints[item.name], prefix + item.metadata["group"].prefix)
            found.extend(Key(key.setting, (item.name, *key.path)) for key in inner)
    return tuple(found)


def check_settings(settings: Any) -> None:
    """Every own key of ``settings`` holds a value of its type that passes its checks (run in __post_init__,
    so Python callers get the checks too); values are normalised (tuples, floats from ints)."""
    cls = type(settings)
    for field_name, declared in _own_settings(cls).items():
        value = declared.coerce(getattr(settings, field_name), cls.__name__)
        if value is None and (declared.required or not declared.kind[2]):
            raise SafeEraserError(f"{_where(cls.__name__, declared.name)} must be set")
        object.__setattr__(settings, field_name, value)
    for item in dataclasses.fields(cls):
        if "group" in item.metadata and not isinstance(getattr(settings, item.name), _group_class(cls, item.name)):
            expected = _group_class(cls, item.name).__name__
            raise SafeEraserError(
                f"{cls.__name__}: '{item.name}' must be a {expected}, got {getattr(settings, item.name)!r}"
            )


def build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """A settings object from checked key values (keys left out keep their defaults); a group class may
    define ``from_values`` (its field values -> the object) to fill in defaults of its own."""
    by_field: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key in keys_of(cls, prefix):
        if key.name not in values:
            continue
        if len(key.path) == 1:
            by_field[key.path[0]] = values[key.name]
        else:
            nested.setdefault(key.path[0], {})[key.name] = values[key.name]
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if "group" in item.metadata:
            inner_prefix = prefix + item.metadata["group"].prefix
            by_field[item.name] = build(hints[item.name], nested.get(item.name, {}), inner_prefix)
    if hasattr(cls, "from_values"):
        return cls.from_values(by_field)
    return cls(**by_field)


def values_of(settings: Any, prefix: str = "") -> dict[str, Any]:
    """The key values of a settings object (groups flattened), as :func:`build` takes them."""
    values = {}
    for key in keys_of(type(settings), prefix):
        value = settings
        for part in key.path:
            value = getattr(value, part)
        values[key.name] = value
    return values


# ----- reading sources ------------------------------------------------------------------------------------
def unknown_key(name: str, source: str, keys: Sequence[Key]) -> SafeEraserError:
    names = [key.name for key in keys]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return SafeEraserError(f"{source}: unknown key '{name}'{hint}; valid keys: {', '.join(names)}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file's mapping; one-line errors name the file."""
    path = Path(path)
    if path.suffix not in CONFIG_SUFFIXES:
        raise SafeEraserError(f"{path}: not a YAML config (expected a {' or '.join(CONFIG_SUFFIXES)} file)")
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
        raise SafeEraserError(f"{path}: expected a mapping of keys to values, got {type(loaded).__name__}")
    return loaded


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``key=value`` texts as a mapping (the values stay text; the keys' coercion types them)."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SafeEraserError(f"{COMMAND_LINE}: expected key=value, got {item!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def read_values(
    cls: type,
    sources: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    unknown: bool = False,
    required: bool = True,
    prefix: str = "",
) -> dict[str, Any]:
    """The checked values of ``cls``'s keys from (source name, mapping) pairs, later ones winning; an unset
    value (None, ``null``) leaves the default. An unknown key is an error unless ``unknown`` (lm-eval metadata
    carries other keys too)."""
    keys = keys_of(cls, prefix)
    by_name = {key.name: key for key in keys}
    winners: dict[str, tuple[Any, str]] = {}  # the value a later source gives wins; only it is checked
    for source, given in sources:
        for name, value in given.items():
            if name not in by_name:
                if unknown:
                    continue
                raise unknown_key(str(name), source, keys)
            winners[name] = (value, source)
    values: dict[str, Any] = {}
    for name, (value, source) in winners.items():
        converted = by_name[name].setting.coerce(value, source)
        if converted is not None:
            values[name] = converted
    if required:
        where = next((source for source, given in sources if given and source != COMMAND_LINE), COMMAND_LINE)
        for key in keys:
            if key.setting.required and values.get(key.name, key.setting.default) is None:
                raise SafeEraserError(
                    f"{_where(where, key.name)} must be set (in the YAML file, as {key.name}=..., "
                    f"or with {key.setting.flag_names[-1]})"
                )
    return values


def read_config(
    cls: type,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> Any:
    """``cls`` from a YAML file, ``key=value`` overrides and flags: default < YAML < key=value < flags."""
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        sources.append((str(config_file), load_yaml(config_file)))
    sources.append((COMMAND_LINE, parse_overrides(overrides)))
    sources.append((COMMAND_LINE, dict(flags or {})))
    return build(cls, read_values(cls, sources))


# ----- the command line --------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, cls: type, example: str = "CONFIG.yaml") -> None:
    """``[CONFIG.yaml] [key=value ...]`` (``--config FILE`` as an alias) and one flag per key of ``cls``."""
    parser.add_argument(
        "arguments",
        nargs="*",
        default=[],
        metavar="CONFIG.yaml key=value",
        help=f"a YAML file of the keys below (e.g. {example}), then key=value pairs that override it",
    )
    parser.add_argument("--config", default=None, metavar="FILE.yaml", help="the YAML file (as the first argument)")
    for key in keys_of(cls):
        declared = key.setting
        shown = " [required]" if declared.required else f" (default: {_shown_default(declared.default)})"
        choices = f" {{{', '.join(map(str, declared.choices))}}}" if declared.choices else ""
        text = f"{declared.help}{choices}{shown}; YAML key '{declared.name}'".replace("%", "%%")
        how: dict[str, Any] = {"metavar": declared.name.upper()}
        base = declared.kind[0]
        if base is bool:
            how = {"action": argparse.BooleanOptionalAction}
        elif base is tuple and declared.parse is None:
            how = {"nargs": "*" if declared.const is not None else "+", "metavar": "V"}
        elif base is dict:
            how = {"action": "append", "metavar": "KEY=VALUE"}
        parser.add_argument(*declared.flag_names, dest=f"key:{declared.name}", default=None, help=text, **how)


def _shown_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def from_arguments(cls: type, args: argparse.Namespace) -> Any:
    """``cls`` from the parsed command line (:func:`add_arguments`); every problem one line."""
    config = args.config
    overrides: list[str] = []
    bare: list[str] = []
    for item in args.arguments:
        if item.endswith(CONFIG_SUFFIXES) and config is None and not overrides and "=" not in item:
            config = item
        elif "=" in item:
            overrides.append(item)
        else:
            bare.append(item)
    keys = keys_of(cls)
    flags = {}
    for key in keys:
        given = getattr(args, f"key:{key.name}", None)
        if given is not None:  # a list flag given without values means its const
            flags[key.name] = key.setting.const if given == [] and key.setting.const is not None else given
    if bare:
        positional = next((key for key in keys if key.setting.positional), None)
        if positional is None:
            raise SafeEraserError(f"{COMMAND_LINE}: expected CONFIG.yaml or key=value, got {bare[0]!r}")
        multiple = positional.setting.kind[0] in (tuple, dict)
        flags.setdefault(positional.name, bare if multiple or len(bare) > 1 else bare[0])
    return read_config(cls, config, overrides, flags)


# ----- the docs and LLaMA-Factory -----------------------------------------------------------------------------
_KIND_WORDS = {str: "text", int: "integer", float: "number", bool: "true/false", Path: "path", dict: "mapping"}


def values_text(declared: Setting) -> str:
    """What a key takes, as the docs' tables show it."""
    if declared.choices:
        return " \\| ".join(f"`{choice}`" for choice in declared.choices)
    base, element, _ = declared.kind
    kind = f"list of {_KIND_WORDS[element]}" if base is tuple else _KIND_WORDS[base]  # type: ignore[index]
    return kind + (f" {declared.constraint}" if declared.minimum is not None else "")


def markdown_table(cls: type) -> str:
    """The key table of the docs: key, default, values, meaning."""
    lines = ["| key | default | values | meaning |", "|---|---|---|---|"]
    for key in keys_of(cls):
        declared = key.setting
        shown = _shown_default(declared.default).replace(" ", ", ") if isinstance(declared.default, tuple) else None
        if declared.required:
            default = "required"
        elif declared.default is None or declared.default == ():
            default = "-"
        else:
            default = f"`{shown if shown is not None else _shown_default(declared.default)}`"
        meaning = declared.help.replace("|", "\\|")
        lines.append(f"| `{declared.name}` | {default} | {values_text(declared)} | {meaning} |")
    return "\n".join(lines)


def hf_field(declared: Setting, help_text: str | None = None, default: Any = dataclasses.MISSING) -> Any:
    """The dataclass field HfArgumentParser reads for a key (its ``-h`` line is the help)."""
    value = declared.default if default is dataclasses.MISSING else default
    return dataclasses.field(default=value, metadata={"help": declared.help if help_text is None else help_text})


def hf_dataclass(name: str, declared: Iterable[Setting], module: str, bases: tuple[type, ...] = ()) -> type:
    """A dataclass of one HfArgumentParser field per key (LLaMA-Factory's arguments classes are such), named
    ``module.name`` so that it pickles like a class written out there."""
    fields = [(item.name, item.type, hf_field(item)) for item in declared]
    cls = dataclasses.make_dataclass(name, fields, bases=bases)
    cls.__module__ = module
    return cls
