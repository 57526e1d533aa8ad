"""Qwen2-VL-7B-Instruct at its released shape: Qwen2 language model with M-RoPE, a ViT whose merger is the
projector; the number of image tokens follows the image size."""

from __future__ import annotations

from typing import Any

from .released import ReleasedModel

MIN_TEXT_LAYERS = 1  # all decoder layers are alike
MIN_VISION_LAYERS = 1  # all vision blocks are alike; the merger follows the last


def layer_counts(released: ReleasedModel) -> tuple[int, int]:
    return released.text_config["num_hidden_layers"], released.vision_config["depth"]


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import Qwen2VLConfig

    text = {key: value for key, value in released.text_config.items() if key != "model_type"}
    text["num_hidden_layers"] = text_layers
    vision = {**released.vision_config, "depth": vision_layers}
    return Qwen2VLConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    settings = dict(released.processor["image_processor"])
    pixels = {"shortest_edge": settings.pop("min_pixels"), "longest_edge": settings.pop("max_pixels")}
    # an explicit `size` dict: the min_pixels/max_pixels keywords edit the class-wide default in place
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(pixels), **settings),
        video_processor=Qwen2VLVideoProcessor(size=dict(pixels), **settings),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )
