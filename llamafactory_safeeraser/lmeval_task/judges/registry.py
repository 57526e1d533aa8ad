"""Judges by name: the built-ins (``rule``, ``hf``, ``openai``) and any a user's package registers.

A package registers a :class:`~.base.Judge` subclass with ``@register_judge("name")`` in a module it
imports, or, to be found without being imported first, through an entry point in the group
``llamafactory_safeeraser.judges``; then ``--judge name`` (metadata ``judge``) selects it. A plugin that
fails to load is reported, in one line naming it, when its name is asked for, and never breaks the other judges.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ...errors import SafeEraserError

ENTRY_POINT_GROUP = "llamafactory_safeeraser.judges"
T = TypeVar("T", bound=type)
_CLASSES: dict[str, type] = {}
_BROKEN: dict[str, str] = {}  # entry-point name -> why it did not load
_entry_points_loaded = False


def register_judge(name: str) -> Callable[[T], T]:
    """Class decorator: make the judge name ``name`` build this class from a JudgeConfig."""

    def decorate(cls: T) -> T:
        if name in _CLASSES and _CLASSES[name] is not cls:
            raise ValueError(f"judge '{name}' is already registered by {_CLASSES[name].__qualname__}")
        _CLASSES[name] = cls
        return cls

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in _CLASSES:
                continue
            try:
                cls = entry.load()
            except Exception as err:  # a broken plugin: report it when asked for, break nothing else
                _BROKEN[entry.name] = f"{type(err).__name__}: {err}"
                continue
            register_judge(entry.name)(cls)


def judge_names() -> list[str]:
    _load_entry_points()
    return sorted(_CLASSES)


def judge_class(name: str) -> type:
    if name not in _CLASSES:
        _load_entry_points()
    if name in _BROKEN:
        raise SafeEraserError(
            f"judge '{name}': its plugin ({ENTRY_POINT_GROUP} entry point) failed to load: {_BROKEN[name]}"
        )
    if name not in _CLASSES:
        raise SafeEraserError(f"unknown judge '{name}'; choose one of {', '.join(judge_names())}")
    return _CLASSES[name]


_JUDGES: dict[str, Any] = {}
_JUDGES_LOCK = threading.Lock()


def get_judge(config: Any) -> Any:
    """The judge for ``config`` (a JudgeConfig), built once per process (a model loads only once)."""
    key = config.to_json()
    with _JUDGES_LOCK:
        if key not in _JUDGES:
            _JUDGES[key] = judge_class(config.name)(config)
        return _JUDGES[key]


def forget_judges() -> None:
    """Drop every built judge (frees a local judge model; closes caches)."""
    with _JUDGES_LOCK:
        for judge in _JUDGES.values():
            cache = getattr(judge, "cache", None)
            if cache is not None:
                cache.close()
        _JUDGES.clear()
