"""Complete Hugging Face checkpoints built offline from a config: tokenizer, processor, weights.

Tests, benchmarks and the CPU demo cannot download ``llava-hf/llava-1.5-7b-hf``; they use
these instead. The checkpoint has the same architecture and file layout as the real one, so
the same loading code (LLaMA-Factory, lm-eval ``hf-multimodal``, ``AutoModelForImageTextToText``)
serves both. Deterministic for a given seed.

Families (``FAMILIES``): ``llava`` (LLaVA-1.5), ``qwen2_vl`` (Qwen2-VL), ``mllama``
(Llama-3.2-Vision) and ``gemma3`` (Gemma 3), each with a locally trained tokenizer holding the family's
special tokens, the family's processor sized for 32 px images, and a chat template that renders the LLaMA-Factory
template it trains with. docs/models.md says how to add one.

Shape sizes (``shape7b``, ``shape13b``, ``shape11b``: ``shapes/``) copy a released checkpoint exactly
(configuration, tokenizer ids and special-token behaviour, processor) with fewer layers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...fileio import check_output_folder, output_folder
from .sizes import ALL_SIZES, FAMILY_SIZES, FAMILY_TABLE, SIZES, ModelSpecError, check_size, is_shape

__all__ = ["ALL_SIZES", "FAMILIES", "FAMILY_SIZES", "SIZES", "ModelSpecError", "write_tiny_model"]


def _builder(family: str) -> Callable[..., tuple[Any, Any]]:
    return importlib.import_module(f"{__name__}.{family}").build


# family -> the LLaMA-Factory template it trains with
FAMILIES: dict[str, str] = {name: family.template for name, family in FAMILY_TABLE.items()}


def write_tiny_model(
    out_dir: str | Path,
    family: str = "llava",
    size: str = "tiny",
    seed: int = 0,
    overwrite: bool = False,
    text_layers: int | str | None = None,
    vision_layers: int | str | None = None,
    dtype: str | None = None,
) -> int:
    """Build and save a checkpoint into ``out_dir`` atomically; returns the parameter count.

    ``text_layers`` / ``vision_layers`` (a number or ``"full"``) and ``dtype`` apply to shape sizes only;
    by default a shape model keeps the fewest layers its architecture allows, in the released dtype.
    """
    check_size(size, family)  # before the heavy imports of the builder
    check_output_folder(out_dir, "make-tiny-model", overwrite, unrecorded_ok=True)  # and before minutes of building
    if is_shape(size):
        from .shapes import build_shape, check_dtype, resolve_layers

        text_layers, vision_layers = resolve_layers(family, size, text_layers, vision_layers)
        model, processor = build_shape(family, size, seed, text_layers, vision_layers, check_dtype(dtype))
    elif (text_layers, vision_layers, dtype) != (None, None, None):
        raise ModelSpecError(
            f"--text-layers, --vision-layers and --dtype apply to the shape sizes only, not to '{size}'"
        )
    else:
        model, processor = _builder(family)(size=size, seed=seed)
    with output_folder(out_dir, "make-tiny-model", overwrite, unrecorded_ok=True) as scratch:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return sum(p.numel() for p in model.parameters())
