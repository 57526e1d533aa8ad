"""LLaVA-1.5 at its released shape (7B, 13B): Llama-2 language model, CLIP ViT-L/14-336, two-layer projector."""

from __future__ import annotations

from typing import Any

from .released import ReleasedModel

# Layers a cut model keeps at least: one decoder layer (all are alike); two vision layers, so that the
# feature layer -2 is a transformer layer's output, as in the released model (layer 23 of 24).
MIN_TEXT_LAYERS = 1
MIN_VISION_LAYERS = 2


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import LlavaConfig

    text = {**released.text_config, "num_hidden_layers": text_layers}
    vision = {**released.vision_config, "num_hidden_layers": vision_layers}
    return LlavaConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import CLIPImageProcessor, LlavaProcessor

    settings = dict(released.processor)
    image_processor = CLIPImageProcessor(**settings.pop("image_processor"))
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **settings)
