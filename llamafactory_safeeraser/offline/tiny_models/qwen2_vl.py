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


def qwen_processor(processor_class: Any, video_processor_class: Any, tokenizer: Any, spec: Any, template: str) -> Any:
    """A Qwen-VL processor for ``spec``'s images (8 px patches merged 2x2), the same for every Qwen-VL family."""
    from transformers import Qwen2VLImageProcessor

    geometry = {"patch_size": spec.patch_size, "merge_size": 2, "temporal_patch_size": 2}
    # min = one 32 px image, max = 64 px: every synthetic image keeps its size (an explicit `size` dict,
    # because the min_pixels/max_pixels keywords edit the class-wide default in place)
    pixels = {"shortest_edge": spec.image_size**2, "longest_edge": (2 * spec.image_size) ** 2}
    return processor_class(
        image_processor=Qwen2VLImageProcessor(size=dict(pixels), **geometry),
        video_processor=video_processor_class(size=dict(pixels), **geometry),
        tokenizer=tokenizer,
        chat_template=template,
    )


def qwen_text_config(tokenizer: Any, spec: Any, rope: dict[str, Any]) -> dict[str, Any]:
    """The language model's config keys shared by the Qwen-VL families (``rope``: their M-RoPE parameters)."""
    return {
        **text_sizes(spec, tokenizer),
        "num_key_value_heads": spec.text_heads,
        "rope_parameters": rope,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def qwen_model(classes: tuple[Any, Any], tokenizer: Any, text: dict, vision: dict, seed: int) -> Any:
    """The randomly initialised model of ``classes`` (config, model): the Qwen-VL token ids, untied embeddings."""
    import torch

    ids = tokenizer.convert_tokens_to_ids
    config_class, model_class = classes
    config = config_class(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = model_class(config)
    set_generation_tokens(model, tokenizer)
    return model


def qwen2_vl_parts(spec: Any, processor_class: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(tokenizer, processor, M-RoPE parameters) shared by Qwen2-VL and Qwen2.5-VL: one template, one tokenizer."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    template = chat_template(QWEN2_VL_FORMAT)
    tokenizer = train_tokenizer(default_corpus(QWEN2_VL_TOKENS), spec.vocab_size, QWEN2_VL_TOKENS, template)
    processor = qwen_processor(processor_class, Qwen2VLVideoProcessor, tokenizer, spec, template)
    rope = {
        "rope_type": "default",
        "rope_theta": 1.0e6,
        "mrope_section": mrope_section(spec.text_hidden // spec.text_heads),
    }
    return tokenizer, processor, rope


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Qwen2-VL-style model.

    A 32 px image is 4x4 patches of 8 px; merging 2x2 patches gives 4 image tokens, wrapped by the
    `qwen2_vl` plugin in <|vision_start|> ... <|vision_end|>.
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    spec = tiny_size(size, "qwen2_vl")
    tokenizer, processor, rope = qwen2_vl_parts(spec, Qwen2VLProcessor)
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
    classes = (Qwen2VLConfig, Qwen2VLForConditionalGeneration)
    return qwen_model(classes, tokenizer, qwen_text_config(tokenizer, spec, rope), vision, seed), processor
