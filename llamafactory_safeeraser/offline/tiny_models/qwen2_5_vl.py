"""Qwen2.5-VL (LLaMA-Factory template `qwen2_vl`, as Qwen2-VL): the same prompt and tokens; the vision tower
attends within windows except in its full-attention blocks, and its merger is an MLP with RMSNorm."""

from __future__ import annotations

from typing import Any

from .qwen2_vl import qwen2_vl_parts, qwen_model, qwen_text_config
from .sizes import tiny_size

# Released: 112 px windows of 14 px patches, i.e. 4x4 merged tokens (8x8 patches), and full attention in every
# 8th block (7, 15, 23, 31). Here: 32 px windows of 8 px patches, i.e. 2x2 merged tokens (4x4 patches): a 32 px
# image is one window, a 64 px image four, a 48 px side pads its second window; the last block attends fully.
WINDOW_PIXELS = 32


def fullatt_block_indexes(depth: int) -> list[int]:
    """The last block of every group of eight (released: [7, 15, 23, 31] of 32), at least the last block."""
    return [index for index in range(depth) if index % 8 == 7 or index == depth - 1]


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Qwen2.5-VL-style model.

    Image tokens as Qwen2-VL's: a 32 px image is 4x4 patches of 8 px, merged 2x2 into 4 image tokens.
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    spec = tiny_size(size, "qwen2_5_vl")
    tokenizer, processor, rope = qwen2_vl_parts(spec, Qwen2_5_VLProcessor)
    vision = {
        "depth": spec.vision_layers,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": 2 * spec.vision_hidden,
        "num_heads": 2,
        "out_hidden_size": spec.text_hidden,  # the merger projects into the language model's width
        "patch_size": spec.patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": WINDOW_PIXELS,
        "fullatt_block_indexes": fullatt_block_indexes(spec.vision_layers),
    }
    classes = (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration)
    return qwen_model(classes, tokenizer, qwen_text_config(tokenizer, spec, rope), vision, seed), processor
