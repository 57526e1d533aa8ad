"""Start-up hook, run from ``llamafactory_safeeraser.pth`` in every interpreter.

It only registers a post-import hook for ``llamafactory.train.tuner``; nothing else is
imported until LLaMA-Factory itself imports that module. That keeps every other program's
start-up free, and it makes the patch reach torchrun workers, which re-execute
``llamafactory/launcher.py`` as a script and would lose patches applied by a wrapper command.
Standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types

TARGET_MODULE = "llamafactory.train.tuner"
DISABLE_ENV = "SAFEERASER_DISABLE"


def is_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class _PatchAfterExecLoader(importlib.abc.Loader):
    """Runs the real loader, then applies the plugin's patch to the fresh module."""

    def __init__(self, wrapped: importlib.abc.Loader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._wrapped.exec_module(module)
        from llamafactory_safeeraser.hook import stage  # deferred: pulls in LLaMA-Factory

        stage.install(module)


class _TunerImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET_MODULE:
            return None
        sys.meta_path.remove(self)  # one-shot; also stops recursion into ourselves
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _PatchAfterExecLoader(spec.loader)
        return spec


def install() -> None:
    """Register the hook unless disabled or already registered."""
    if is_disabled() or any(isinstance(f, _TunerImportHook) for f in sys.meta_path):
        return
    if TARGET_MODULE in sys.modules:  # imported before us (unusual): patch right away
        from llamafactory_safeeraser.hook import stage

        stage.install(sys.modules[TARGET_MODULE])
        return
    sys.meta_path.insert(0, _TunerImportHook())
