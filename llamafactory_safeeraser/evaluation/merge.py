"""A model as an evaluator or an attacker receives it: the LoRA adapter merged into the base weights."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .results import RunSpec, model_location


def merge_adapter(model: str | Path, adapter: str | Path, out_dir: Path) -> Path:
    """Write base + LoRA adapter as one Hugging Face checkpoint (weights in the checkpoint's dtype) with the
    base model's processor, ready for ``llamafactory-cli train``, lm-eval and lmms-eval (whose ``llava_hf``
    takes no adapter). ``model`` and ``adapter``: local folders or hub ids."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base = AutoModelForImageTextToText.from_pretrained(model_location(model), dtype="auto")
    merged = PeftModel.from_pretrained(base, model_location(adapter)).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoProcessor.from_pretrained(model_location(model)).save_pretrained(out_dir)
    return out_dir


@contextmanager
def quantized_model(run: RunSpec, device: str) -> Iterator[Any]:
    """``run``'s model, adapter merged, loaded with its weights quantized to ``run.quantization_bit`` on ``device``.
    The merged checkpoint lies in a temporary folder (``TMPDIR``) while the block runs: its ``name_or_path`` is
    where lm-eval reads the processor from. Quantizing the merged weights, not the base under a LoRA adapter, is
    what a user who ships the unlearned model quantized gets."""
    from ..integration.quantization import load_quantized_model

    if run.quantization_bit is None:
        raise ValueError(f"run '{run.name}' has no quantization_bit")
    with tempfile.TemporaryDirectory(prefix="safeeraser-quantized-") as scratch:
        folder = model_location(run.model)
        if run.adapter is not None:
            folder = str(merge_adapter(run.model, run.adapter, Path(scratch)))
        yield load_quantized_model(folder, run.quantization_bit, device)
