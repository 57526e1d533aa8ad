"""LLaVA-NeXT (1.6) Vicuna-7B at its released shape: LLaVA-1.5's Llama-2 language model, CLIP ViT-L/14-336 and
projector, with "any resolution": a 336 px base view plus the image tiled at the best of five grid
resolutions, one newline embedding per feature row; the number of image tokens follows the image size."""

from __future__ import annotations

from typing import Any

from .llava import MIN_TEXT_LAYERS, MIN_VISION_LAYERS
from .released import ReleasedModel

__all__ = ["MIN_TEXT_LAYERS", "MIN_VISION_LAYERS", "make_config", "make_processor"]


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import LlavaNextConfig

    text = {**released.text_config, "num_hidden_layers": text_layers}
    vision = {**released.vision_config, "num_hidden_layers": vision_layers}
    return LlavaNextConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import LlavaNextImageProcessor, LlavaNextProcessor

    settings = dict(released.processor)
    image_processor = LlavaNextImageProcessor(**settings.pop("image_processor"))
    return LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **settings
    )
