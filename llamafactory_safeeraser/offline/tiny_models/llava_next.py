"""LLaVA-NeXT 1.6 (LLaMA-Factory template `llava_next`, as `llava-hf/llava-v1.6-vicuna-7b-hf`): LLaVA-1.5's
Vicuna prompt, tokenizer and CLIP tower, with anyres: the image is also cut into tiles of a grid chosen from
``image_grid_pinpoints`` for its size, so the number of image tokens follows the image size."""

from __future__ import annotations

from typing import Any

from .llava import IMAGE_TOKEN, LLAVA_CHAT_TEMPLATE, LLAVA_TOKENS, clip_vision_config, llama_text_config
from .sizes import tiny_size
from .tokenizer import default_corpus, set_generation_tokens, train_tokenizer

# llava-v1.6-vicuna's grid pinpoints in units of its 336 px tile: 1x2, 2x1, 2x2, 3x1, 1x3 tiles (height x width)
PINPOINT_TILES = ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised LLaVA-NeXT-style model.

    The released grid pinpoints scaled to the 32 px tile: a 32x32 image is 16 base patches, then a 1x2-tile grid
    unpadded to 4x4 patches plus 4 row newlines: 36 image tokens (CLS dropped: strategy ``default``).
    """
    import torch
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    spec = tiny_size(size, "llava_next")
    tokenizer = train_tokenizer(default_corpus(LLAVA_TOKENS), spec.vocab_size, LLAVA_TOKENS, LLAVA_CHAT_TEMPLATE)
    pinpoints = [[rows * spec.image_size, columns * spec.image_size] for rows, columns in PINPOINT_TILES]
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, as the released processor; the plugin subtracts it
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    config = LlavaNextConfig(
        vision_config=clip_vision_config(spec),
        text_config=llama_text_config(spec, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_grid_pinpoints=pinpoints,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    set_generation_tokens(model, tokenizer)
    return model, processor
