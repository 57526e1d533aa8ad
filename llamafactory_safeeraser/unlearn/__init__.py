"""Unlearning methods for `stage: unlearn`.

Public API for writing a method: ``UnlearningTrainer``, ``UnlearningBatch``, ``register_method``
and the pure loss functions in ``losses``. Attributes load lazily, because importing the trainer
imports LLaMA-Factory.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UnlearningBatch", "UnlearningTrainer", "get_method", "method_names", "register_method"]


def __getattr__(name: str) -> Any:
    if name in ("UnlearningTrainer", "UnlearningBatch"):
        from . import trainer

        return getattr(trainer, name)
    if name in ("register_method", "get_method", "method_names"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(name)
