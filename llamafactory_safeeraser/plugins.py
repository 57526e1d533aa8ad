"""Plugins found through entry points, for the method and judge registries alike.

A plugin that fails to import is remembered with the reason, reported in one line when its name is asked for,
and never breaks the registry's other entries.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from importlib.metadata import entry_points


def load_entry_points(
    group: str,
    registered: Container[str],
    register: Callable[[str, type], None],
    broken: dict[str, str],
    normalise: Callable[[str], str] = str,
) -> None:
    """Register every entry point of ``group`` not yet ``registered``; one that fails to load goes to ``broken``."""
    for entry in entry_points(group=group):
        name = normalise(entry.name)
        if name in registered:
            continue
        try:
            cls = entry.load()
        except Exception as err:  # a broken plugin: report it when asked for, break nothing else
            broken[name] = f"{type(err).__name__}: {err}"
            continue
        register(entry.name, cls)


def broken_plugin(what: str, group: str, reason: str) -> str:
    """The one line that reports a plugin which failed to load."""
    return f"{what}: its plugin ({group} entry point) failed to load: {reason}"
