"""Qwen2.5-VL-7B-Instruct at its released shape: Qwen2.5 language model with M-RoPE, a ViT with window
attention (full attention in every eighth block) whose merger is the projector; the number of image tokens
follows the image size."""

from __future__ import annotations

from typing import Any

from .qwen2_vl import pixel_budget_processor
from .released import ReleasedModel

MIN_TEXT_LAYERS = 1  # all decoder layers are alike
MIN_VISION_LAYERS = 2  # a window-attention block and a full-attention one (the released 7 of 8 and 1 of 8)


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    """Full-attention blocks keep their released positions below ``vision_layers`` (the last block when
    none is left)."""
    from transformers import Qwen2_5_VLConfig

    text = {key: value for key, value in released.text_config.items() if key != "model_type"}
    text["num_hidden_layers"] = text_layers
    full = [block for block in released.vision_config["fullatt_block_indexes"] if block < vision_layers]
    vision = {**released.vision_config, "depth": vision_layers, "fullatt_block_indexes": full or [vision_layers - 1]}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return pixel_budget_processor(Qwen2_5_VLProcessor, Qwen2VLVideoProcessor, released, tokenizer, chat_template)
