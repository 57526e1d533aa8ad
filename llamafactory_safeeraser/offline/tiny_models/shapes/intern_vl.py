"""InternVL3-8B (transformers format, ``-hf``) at its released shape: Qwen2.5-7B language model, InternViT-300M
at 448 px, pixel shuffle (32 x 32 patches to 16 x 16) and a two-layer projector: 256 image tokens per tile."""

from __future__ import annotations

from typing import Any

from .released import ReleasedModel

MIN_TEXT_LAYERS = 1  # all decoder layers are alike
MIN_VISION_LAYERS = 1  # all vision layers are alike; the feature layer is the last (-1)


def make_config(released: ReleasedModel, text_layers: int, vision_layers: int) -> Any:
    from transformers import InternVLConfig

    text = {**released.text_config, "num_hidden_layers": text_layers}
    vision = {**released.vision_config, "num_hidden_layers": vision_layers}
    return InternVLConfig(text_config=text, vision_config=vision, **released.config)


def make_processor(released: ReleasedModel, tokenizer: Any, chat_template: str) -> Any:
    from transformers import GotOcr2ImageProcessor, InternVLProcessor
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor

    settings = released.processor["image_processor"]
    return InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(**settings),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(
            size=settings["size"], image_mean=settings["image_mean"], image_std=settings["image_std"]
        ),
        image_seq_length=released.processor["image_seq_length"],
        chat_template=chat_template,
    )
