"""LLaVA-1.5 (LLaMA-Factory template `llava`): CLIP vision tower, projector, Llama language model."""

from __future__ import annotations

from typing import Any

from .sizes import TinySize, text_sizes, tiny_size
from .tokenizer import ChatFormat, TokenizerSpec, chat_template, default_corpus, set_generation_tokens, train_tokenizer

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)
LLAVA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_FORMAT = ChatFormat(LLAVA_SYSTEM, "", "", "USER: ", " ASSISTANT:", "</s>", image=f"{IMAGE_TOKEN}\n")
LLAVA_CHAT_TEMPLATE = chat_template(LLAVA_FORMAT)
LLAVA_TOKENS = TokenizerSpec(
    SPECIAL_TOKENS, "<s>", "</s>", "<pad>", "<unk>", {"image_token": IMAGE_TOKEN}, (LLAVA_SYSTEM, "USER: ASSISTANT:")
)


def build(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised LLaVA-1.5-style model."""
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    spec = tiny_size(size, "llava")
    tokenizer = train_tokenizer(default_corpus(LLAVA_TOKENS), spec.vocab_size, LLAVA_TOKENS, LLAVA_CHAT_TEMPLATE)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token; LLaMA-Factory's llava plugin needs it
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    vision, text = clip_vision_config(spec), llama_text_config(spec, tokenizer)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    set_generation_tokens(model, tokenizer)
    return model, processor


def clip_vision_config(spec: TinySize) -> Any:
    """LLaVA's CLIP vision tower at ``spec``'s size (also LLaVA-NeXT's)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 2,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.vision_hidden,
    )


def llama_text_config(spec: TinySize, tokenizer: Any) -> Any:
    """LLaVA's Llama language model at ``spec``'s size (also LLaVA-NeXT's), with ``tokenizer``'s token ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **text_sizes(spec, tokenizer),
        num_key_value_heads=spec.text_heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
