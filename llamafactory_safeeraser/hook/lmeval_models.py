"""Adds ``safeeraser-hf-multimodal`` to lm-eval's model index, as a lazy entry like lm-eval's own models."""

from __future__ import annotations

import types

from ..lmeval_task import MODEL_CLASS, MODEL_NAME


def install(module: types.ModuleType) -> None:
    """``module``: lm_eval.models, just imported (it has filled the registry with its own lazy entries)."""
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_CLASS)
