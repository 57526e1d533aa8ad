"""Llama-3.2-11B-Vision-Instruct at its released shape: a Llama 3.1 language model with gated cross-attention
layers, a tiled ViT (local and global encoders) whose intermediate layers feed the projector."""

from __future__ import annotations

import math
from typing import Any

from .released import ReleasedModel

# One self-attention and one cross-attention layer (the released model starts with self-attention layers:
# its first cross-attention layer is layer 3); one local and one global vision layer.
MIN_TEXT_LAYERS = 2
MIN_VISION_LAYERS = 1


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    """The released config with ``text_layers`` decoder layers (cross-attention ones included) and
    ``vision_layers`` local vision layers.

    Cross-attention layers keep their released positions below ``text_layers`` (the last layer when
    none is left); the global encoder keeps its released share (8 of 32, at least 1); the five tapped
    intermediate layers keep their count, hence the projector's input width, and move to the last
    layer where theirs is cut.
    """
    from transformers import MllamaConfig

    text, vision = dict(released.text_config), dict(released.vision_config)
    cross = [layer for layer in text["cross_attention_layers"] if layer < text_layers] or [text_layers - 1]
    text.pop("model_type")
    text.update(num_hidden_layers=text_layers, cross_attention_layers=cross)
    released_local, released_global = vision["num_hidden_layers"], vision["num_global_layers"]
    vision.update(
        num_hidden_layers=vision_layers,
        num_global_layers=max(1, released_global * vision_layers // released_local),
        intermediate_layers_indices=[min(layer, vision_layers - 1) for layer in vision["intermediate_layers_indices"]],
    )
    return MllamaConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import MllamaImageProcessor, MllamaProcessor

    image_processor = MllamaImageProcessor(**released.processor["image_processor"])
    return MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)


def after_init(model: Any) -> None:
    """Mllama's tanh gates start at 0, which shuts the image out of a random model; open them at pi/4."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.numel() == 1 and "gate" in name.rsplit(".", 1)[-1]:
                parameter.fill_(math.pi / 4)
