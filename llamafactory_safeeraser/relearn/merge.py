"""The unlearned model as an attacker receives it: the unlearning adapter merged into the base weights."""

from __future__ import annotations

from pathlib import Path


def merge_adapter(model_dir: str | Path, adapter_dir: str | Path, out_dir: Path) -> Path:
    """Write base + LoRA adapter as one Hugging Face checkpoint (weights in the checkpoint's dtype) with the
    base model's processor, ready for ``llamafactory-cli train`` and lm-eval."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype="auto")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoProcessor.from_pretrained(str(model_dir)).save_pretrained(out_dir)
    return out_dir
