"""InternVL 3 / 3.5 in transformers' format (LLaMA-Factory template `intern_vl`, as `OpenGVLab/InternVL3-8B-hf`):
InternViT, a pixel-shuffle projector and a Qwen2.5 language model. An image is ``<img>`` + ``<IMG_CONTEXT>`` ×
(tokens per tile × tiles) + ``</img>``; with dynamic tiling the tiles follow the image's size and aspect ratio."""

from __future__ import annotations

from typing import Any

from .sizes import text_sizes, tiny_size
from .tokenizer import ChatFormat, TokenizerSpec, chat_template, default_corpus, set_generation_tokens, train_tokenizer

INTERN_VL_SYSTEM = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)
IMAGE_TOKEN = "<IMG_CONTEXT>"
INTERN_VL_FORMAT = ChatFormat(
    INTERN_VL_SYSTEM,
    "<|im_start|>system\n",
    "<|im_end|>\n",
    "<|im_start|>user\n",
    "<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|>\n",
    image=IMAGE_TOKEN + "\n",  # InternVLProcessor writes <img> + the tile tokens + </img> for it
)
INTERN_VL_TOKENS = TokenizerSpec(
    special_tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<img>",
        "</img>",
        IMAGE_TOKEN,
        "<quad>",
        "</quad>",
        "<ref>",
        "</ref>",
        "<box>",
        "</box>",
        "<video>",
    ),
    bos_token=None,  # Qwen2.5's tokenizer has none: the template's BOS slot writes nothing
    eos_token="<|im_end|>",  # the released tokenizer's (the template does not replace it)
    pad_token="<|endoftext|>",
    unk_token=None,
    # the names InternVLProcessor reads from the tokenizer
    named_tokens={
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": IMAGE_TOKEN,
        "video_token": "<video>",
    },
    corpus=(INTERN_VL_SYSTEM, "system\nuser\nassistant\n"),
)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # the released processor's
MAX_TILES = 12  # the released processor's max_patches, also what LLaMA-Factory's plugin tiles to (crop_to_patches)


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised InternVL-style model.

    A 32 px tile is 4x4 patches of 8 px; the pixel shuffle (downsample ratio 0.5) makes them 4 tokens per tile.
    With tiling (``crop_to_patches``) a 32x32 image is one tile, a 64x32 one two tiles plus a thumbnail.
    """
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    spec = tiny_size(size, "intern_vl")
    template = chat_template(INTERN_VL_FORMAT)
    tokenizer = train_tokenizer(default_corpus(INTERN_VL_TOKENS), spec.vocab_size, INTERN_VL_TOKENS, template)
    pixels = {"height": spec.image_size, "width": spec.image_size}
    normalise = {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}
    image_processor = GotOcr2ImageProcessor(
        size=dict(pixels), crop_to_patches=False, min_patches=1, max_patches=MAX_TILES, **normalise
    )
    downsample_ratio = 0.5
    tokens_per_tile = int((spec.image_size // spec.patch_size) ** 2 * downsample_ratio**2)
    processor = InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size=dict(pixels), **normalise),
        image_seq_length=tokens_per_tile,
        chat_template=template,
    )
    vision = {
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_hidden * 2,
        "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": 2,
        "image_size": [spec.image_size, spec.image_size],
        "patch_size": [spec.patch_size, spec.patch_size],
    }
    text = {
        "model_type": "qwen2",
        **text_sizes(spec, tokenizer),
        "num_key_value_heads": spec.text_heads,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1.0e6},
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=tokens_per_tile,
        downsample_ratio=downsample_ratio,
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    set_generation_tokens(model, tokenizer)
    return model, processor
