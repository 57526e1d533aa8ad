"""Qwen2-VL-7B-Instruct at its released shape: Qwen2 language model with M-RoPE, a ViT whose merger is the
projector; the number of image tokens follows the image size."""

from __future__ import annotations

from typing import Any

from .released import ReleasedModel

MIN_TEXT_LAYERS = 1  # all decoder layers are alike
MIN_VISION_LAYERS = 1  # all vision blocks are alike; the merger follows the last


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import Qwen2VLConfig

    text = {key: value for key, value in released.text_config.items() if key != "model_type"}
    text["num_hidden_layers"] = text_layers
    vision = {**released.vision_config, "depth": vision_layers}
    return Qwen2VLConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return pixel_budget_processor(Qwen2VLProcessor, Qwen2VLVideoProcessor, released, tokenizer, chat_template)


def pixel_budget_processor(
    processor_class: Any, video_processor_class: Any, released: ReleasedModel, tokenizer: Any, chat_template: str
) -> Any:
    """A Qwen-VL processor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): images resized within a pixel budget
    (``min_pixels`` / ``max_pixels``); videos with the image settings unless the model has its own."""
    from transformers import Qwen2VLImageProcessor

    image = dict(released.processor["image_processor"])
    video = {**image, **released.processor.get("video_processor", {})}
    # an explicit `size` dict: the min_pixels/max_pixels keywords edit the class-wide default in place
    image_size, video_size = (
        {"shortest_edge": settings.pop("min_pixels"), "longest_edge": settings.pop("max_pixels")}
        for settings in (image, video)
    )
    return processor_class(
        image_processor=Qwen2VLImageProcessor(size=image_size, **image),
        video_processor=video_processor_class(size=video_size, **video),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )
