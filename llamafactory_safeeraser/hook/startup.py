"""Start-up hook, run from ``llamafactory_safeeraser.pth`` in every interpreter.

It only registers a post-import hook for two LLaMA-Factory modules and lm-eval's model index; nothing else is
imported until LLaMA-Factory or lm-eval itself imports one of them:

- ``llamafactory.train.tuner`` (every training command): ``hook/stage`` adds `stage: unlearn`;
- ``llamafactory.webui.interface`` (``llamafactory-cli webui``): ``hook/board`` adds the `Unlearning` stage
  to LlamaBoard;
- ``lm_eval.models`` (lm-eval's model index): ``hook/lmeval_models`` adds ``safeeraser-hf-multimodal`` (lazily: its
  module loads when a run picks it), so that plain ``lm-eval --model safeeraser-hf-multimodal`` finds it.

That keeps every other program's start-up free, and it makes the patch reach torchrun workers, which
re-execute ``llamafactory/launcher.py`` as a script and would lose patches applied by a wrapper command.
Each module is patched once, when it is first imported. Standard library only.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types

# module LLaMA-Factory imports -> the module of ours whose ``install(module)`` patches it
TARGETS = {
    "llamafactory.train.tuner": "llamafactory_safeeraser.hook.stage",
    "llamafactory.webui.interface": "llamafactory_safeeraser.hook.board",
    "lm_eval.models": "llamafactory_safeeraser.hook.lmeval_models",
}
DISABLE_ENV = "SAFEERASER_DISABLE"


def is_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _patch(module: types.ModuleType) -> None:
    installer = importlib.import_module(TARGETS[module.__name__])  # deferred: pulls in LLaMA-Factory
    installer.install(module)


class _PatchAfterExecLoader(importlib.abc.Loader):
    """Runs the real loader, then applies the plugin's patch to the fresh module."""

    def __init__(self, wrapped: importlib.abc.Loader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._wrapped.exec_module(module)
        _patch(module)


class _LlamaFactoryImportHook(importlib.abc.MetaPathFinder):
    def __init__(self, pending: set[str]) -> None:
        self.pending = pending

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)  # one-shot per module
        if not self.pending:
            sys.meta_path.remove(self)  # nothing left to watch: out of every later import's way
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _PatchAfterExecLoader(spec.loader)
        return spec


def install() -> None:
    """Register the hook unless disabled or already registered."""
    if is_disabled() or any(isinstance(f, _LlamaFactoryImportHook) for f in sys.meta_path):
        return
    pending = set()
    for name in TARGETS:
        if name in sys.modules:  # imported before us (unusual): patch right away
            _patch(sys.modules[name])
        else:
            pending.add(name)
    if pending:
        sys.meta_path.insert(0, _LlamaFactoryImportHook(pending))
