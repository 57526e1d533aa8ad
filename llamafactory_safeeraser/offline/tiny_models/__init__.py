"""Complete Hugging Face checkpoints built offline from a config: tokenizer, processor, weights.

Tests, benchmarks and the CPU demo cannot download ``llava-hf/llava-1.5-7b-hf``; they use
these instead. The checkpoint has the same architecture and file layout as the real one, so
the same loading code (LLaMA-Factory, lm-eval ``hf-multimodal``, ``AutoModelForImageTextToText``)
serves both. Deterministic for a given seed.

Families (``FAMILIES``): ``llava`` (LLaVA-1.5), ``qwen2_vl`` (Qwen2-VL) and ``mllama``
(Llama-3.2-Vision), each with a locally trained tokenizer holding the family's special tokens, the
family's processor sized for 32 px images, and a chat template that renders the LLaMA-Factory
template it trains with. docs/models.md says how to add one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...fileio import atomic_directory
from .sizes import FAMILY_SIZES, SIZES, ModelSpecError, tiny_size

__all__ = ["FAMILIES", "FAMILY_SIZES", "SIZES", "ModelSpecError", "write_tiny_model"]


def _builder(family: str) -> Callable[..., tuple[Any, Any]]:
    from . import llava, mllama, qwen2_vl

    return {"llava": llava.build_llava, "qwen2_vl": qwen2_vl.build_qwen2_vl, "mllama": mllama.build_mllama}[family]


# family -> the LLaMA-Factory template it trains with
FAMILIES: dict[str, str] = {"llava": "llava", "qwen2_vl": "qwen2_vl", "mllama": "mllama"}


def write_tiny_model(
    out_dir: str | Path, family: str = "llava", size: str = "tiny", seed: int = 0, overwrite: bool = False
) -> int:
    """Build and save a checkpoint into ``out_dir`` atomically; returns the parameter count."""
    tiny_size(size, family)  # before the heavy imports of the builder
    model, processor = _builder(family)(size=size, seed=seed)
    with atomic_directory(out_dir, overwrite=overwrite) as scratch:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return sum(p.numel() for p in model.parameters())
