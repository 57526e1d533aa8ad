"""Unlearning methods for `stage: unlearn`.

Public API for writing a method: ``UnlearningTrainer``, ``StepOutputs``, ``register_method``,
``Setting`` (a method's YAML keys; ``MethodParam`` is its older name) and the pure loss functions in
``losses``. Attributes load lazily, because importing the trainer imports LLaMA-Factory.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MethodParam",
    "Setting",
    "StepOutputs",
    "UnlearningTrainer",
    "get_method",
    "method_names",
    "register_method",
]

_HOMES = {
    "UnlearningTrainer": "trainer",
    "StepOutputs": "outputs",
    "MethodParam": "params",
    "Setting": "params",
    "register_method": "registry",
    "get_method": "registry",
    "method_names": "registry",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
