"""Qwen3-VL (LLaMA-Factory template `qwen3_vl`): Qwen3 language model with interleaved M-RoPE; the vision
tower's deepstack layers add their merged features to the first language-model layers; no default system
prompt; the template is a reasoning one (an empty ``<think>`` block opens each trained answer)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .qwen2_vl import QWEN2_VL_FORMAT, QWEN2_VL_TOKENS, qwen_model, qwen_processor, qwen_text_config
from .sizes import tiny_size
from .tokenizer import chat_template, default_corpus, train_tokenizer

# the released tokenizer's thought words: added tokens (never split) that are not special (decoding keeps them)
THINK_TOKENS = ("<think>", "</think>")
QWEN3_VL_FORMAT = replace(QWEN2_VL_FORMAT, default_system="")  # the template has no default system
QWEN3_VL_TOKENS = replace(QWEN2_VL_TOKENS, corpus=("system\nuser\nassistant\n", "\n\n"))


def interleaved_mrope_section(head_dim: int) -> list[int]:
    """Qwen3-VL's (temporal, height, width) counts of rotary frequencies; [24, 20, 20] at 128, [4, 2, 2] at 16.

    Interleaved: height takes every third frequency from the second, width from the third, so each spatial
    count is at most a third of the half-dimension."""
    half = head_dim // 2
    spatial = 5 * half // 16
    return [half - 2 * spatial, spatial, spatial]


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Qwen3-VL-style model.

    A 32 px image is 4x4 patches of 8 px (released: 16 px), merged 2x2 into 4 image tokens; the vision tower's
    position embeddings cover 8x8 patches (64 px) and are interpolated for smaller grids, as released (48x48).
    """
    from tokenizers import AddedToken
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    spec = tiny_size(size, "qwen3_vl")
    template = chat_template(QWEN3_VL_FORMAT)
    tokenizer = train_tokenizer(default_corpus(QWEN3_VL_TOKENS), spec.vocab_size, QWEN3_VL_TOKENS, template)
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False) for token in THINK_TOKENS])
    processor = qwen_processor(Qwen3VLProcessor, Qwen3VLVideoProcessor, tokenizer, spec, template)
    head_dim = spec.text_hidden // spec.text_heads
    rope = {
        "rope_type": "default",
        "rope_theta": 5.0e6,
        "mrope_section": interleaved_mrope_section(head_dim),
        "mrope_interleaved": True,
    }
    text = {**qwen_text_config(tokenizer, spec, rope), "head_dim": head_dim}
    patches_per_side = 2 * spec.image_size // spec.patch_size
    vision = {
        "depth": spec.vision_layers,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": 2 * spec.vision_hidden,
        "num_heads": 2,
        "out_hidden_size": spec.text_hidden,
        "patch_size": spec.patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": patches_per_side**2,
        # released: blocks 8, 16, 24 of 27 feed language-model layers 0-2; here block 0 of 2 feeds layer 0
        "deepstack_visual_indexes": [0],
    }
    return qwen_model((Qwen3VLConfig, Qwen3VLForConditionalGeneration), tokenizer, text, vision, seed), processor
