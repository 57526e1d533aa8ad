"""A model as an evaluator or an attacker receives it: the LoRA adapter merged into the base weights."""

from __future__ import annotations

from pathlib import Path

from .results import model_location


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
