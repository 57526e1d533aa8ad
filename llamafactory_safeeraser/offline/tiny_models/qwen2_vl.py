"""Qwen2-VL (LLaMA-Factory template `qwen2_vl`): the image pads are wrapped in vision start/end tokens and
their count follows the image size."""

from __future__ import annotations

from typing import Any

from .sizes import text_sizes, tiny_size
from .tokenizer import ChatFormat, TokenizerSpec, chat_template, default_corpus, set_generation_tokens, train_tokenizer

QWEN2_VL_SYSTEM = "You are a helpful assistant."
QWEN2_VL_FORMAT = ChatFormat(
    QWEN2_VL_SYSTEM,
    "<|im_start|>system\n",
    "<|im_end|>\n",
    "<|im_start|>user\n",
    "<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|>\n",
    image="<|vision_start|><|image_pad|><|vision_end|>\n",
)
QWEN2_VL_TOKENS = TokenizerSpec(
    special_tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ),
    bos_token=None,  # Qwen tokenizers have no BOS
    eos_token="<|im_end|>",  # what LLaMA-Factory's template sets (replace_eos)
    pad_token="<|endoftext|>",
    unk_token=None,  # byte-level BPE needs none
    named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    corpus=(QWEN2_VL_SYSTEM, "system\nuser\nassistant\n"),
)


def mrope_section(head_dim: int) -> list[int]:
    """Qwen2-VL's split of the rotary half-dimension into (temporal, height, width); [16, 24, 24] at 128."""
    half = head_dim // 2
    spatial = 3 * half // 8
    return [half - 2 * spatial, spatial, spatial]


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Qwen2-VL-style model.

    A 32 px image is 4x4 patches of 8 px; merging 2x2 patches gives 4 image tokens, wrapped by the
    `qwen2_vl` plugin in <|vision_start|> ... <|vision_end|>.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    spec = tiny_size(size, "qwen2_vl")
    template = chat_template(QWEN2_VL_FORMAT)
    tokenizer = train_tokenizer(default_corpus(QWEN2_VL_TOKENS), spec.vocab_size, QWEN2_VL_TOKENS, template)
    geometry = {"patch_size": spec.patch_size, "merge_size": 2, "temporal_patch_size": 2}
    # min = one 32 px image, max = 64 px: every synthetic image keeps its size (an explicit `size` dict,
    # because the min_pixels/max_pixels keywords edit the class-wide default in place)
    pixels = {"shortest_edge": spec.image_size**2, "longest_edge": (2 * spec.image_size) ** 2}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(pixels), **geometry),
        video_processor=Qwen2VLVideoProcessor(size=dict(pixels), **geometry),
        tokenizer=tokenizer,
        chat_template=template,
    )
    ids = tokenizer.convert_tokens_to_ids
    head_dim = spec.text_hidden // spec.text_heads
    text = {
        **text_sizes(spec, tokenizer),
        "num_key_value_heads": spec.text_heads,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1.0e6, "mrope_section": mrope_section(head_dim)},
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "depth": spec.vision_layers,
        "embed_dim": spec.vision_hidden,
        "hidden_size": spec.text_hidden,  # the merger projects into the language model's width
        "mlp_ratio": 2,
        "num_heads": 2,
        "patch_size": spec.patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    set_generation_tokens(model, tokenizer)
    return model, processor
