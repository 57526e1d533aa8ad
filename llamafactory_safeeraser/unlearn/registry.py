"""Unlearning methods by name: the built-ins plus any registered by the user's own package.

A user's package registers a trainer class either by calling :func:`register_method` at
import time, or, to be found without being imported first (also in torchrun workers), through
an entry point in the group ``llamafactory_safeeraser.methods``::

    entry_points={"llamafactory_safeeraser.methods": ["my_ga = my_pkg.my_method:MyGATrainer"]}

See ``examples/custom_method/``. A plugin that fails to load is reported when its name is asked for,
and never breaks the other methods (nor LLaMA-Factory's own stages).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TypeVar

ENTRY_POINT_GROUP = "llamafactory_safeeraser.methods"
# the built-in methods, paper methods first; each is the module methods/<name>.py
BUILTIN_METHODS = ("ga", "gd", "kl", "po", "npo", "simnpo", "idkdpo", "rmu")

T = TypeVar("T", bound=type)
_METHODS: dict[str, type] = {}
_BROKEN: dict[str, str] = {}  # entry-point name -> why it did not load
_loaded = False


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: make ``unlearn_method: <name>`` select this trainer class."""

    def decorate(cls: T) -> T:
        key = name.lower()
        if key in _METHODS and _METHODS[key] is not cls:
            raise ValueError(f"unlearning method '{key}' is already registered by {_METHODS[key].__qualname__}")
        _METHODS[key] = cls
        cls.method_name = key
        return cls

    return decorate


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_METHODS:
        import_module(f"{__package__}.methods.{module}")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as err:  # a broken plugin: report it when asked for, break nothing else
            _BROKEN[entry.name.lower()] = f"{type(err).__name__}: {err}"
            continue
        if entry.name.lower() not in _METHODS:
            register_method(entry.name)(cls)


def method_names() -> list[str]:
    _load_all()
    return sorted(_METHODS)


def all_methods() -> list[type]:
    """Every registered method class, by name."""
    return [_METHODS[name] for name in method_names()]


def get_method(name: str) -> type:
    _load_all()
    key = name.lower()
    if key in _BROKEN:
        raise ValueError(
            f"unlearn_method '{name}': its plugin ({ENTRY_POINT_GROUP} entry point) failed to load: {_BROKEN[key]}"
        )
    if key not in _METHODS:
        raise ValueError(f"unknown unlearn_method '{name}'; valid choices: {', '.join(method_names())}")
    return _METHODS[key]
