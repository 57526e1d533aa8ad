"""Gemma-3-12B-it at its released shape: a Gemma 3 language model whose layers attend over a 1,024-token
sliding window except every sixth (global attention, its own RoPE), a SigLIP-So400m vision tower at 896 px,
and a projector pooling its 64 x 64 patches into 256 image tokens."""

from __future__ import annotations

from typing import Any

from .released import ReleasedModel

# A sliding-window layer and a global one: the two kinds, each with its RoPE (the released model starts
# with five sliding layers); the vision layers are all alike.
MIN_TEXT_LAYERS = 2
MIN_VISION_LAYERS = 1
SLIDING, FULL = "sliding_attention", "full_attention"


def layer_types(released: ReleasedModel, text_layers: int) -> list[str]:
    """The released pattern (every ``sliding_window_pattern``-th layer global) cut to ``text_layers``; the
    last layer global when the cut keeps none."""
    pattern = released.text_config["sliding_window_pattern"]
    types = [FULL if (layer + 1) % pattern == 0 else SLIDING for layer in range(text_layers)]
    if FULL not in types:
        types[-1] = FULL
    return types


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import Gemma3Config

    text = {key: value for key, value in released.text_config.items() if key != "sliding_window_pattern"}
    text.update(num_hidden_layers=text_layers, layer_types=layer_types(released, text_layers))
    vision = {**released.vision_config, "num_hidden_layers": vision_layers}
    return Gemma3Config(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    image_processor = Gemma3ImageProcessor(**released.processor["image_processor"])
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        image_seq_length=released.processor["image_seq_length"],
    )
