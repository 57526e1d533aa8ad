"""Complete Hugging Face checkpoints built offline from a config: tokenizer, processor, weights.

Tests, benchmarks and the CPU demo cannot download ``llava-hf/llava-1.5-7b-hf``; they use
these instead. The checkpoint has the same architecture and file layout as the real one, so
the same loading code (LLaMA-Factory, lm-eval ``hf-multimodal``, ``AutoModelForImageTextToText``)
serves both. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fileio import atomic_directory

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)
# LLaMA-Factory's `llava` template (system prompt, "USER: ... ASSISTANT:", answer + eos) as a
# chat template, so that lm-eval and transformers render prompts exactly as training saw them.
LLAVA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] -%}{%- set messages = messages[1:] -%}"
    '{%- else -%}{%- set system = "' + LLAVA_SYSTEM + '" -%}{%- endif -%}'
    "{{- system -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'USER: ' -}}{%- else -%}{{- '' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\n' -}}{%- elif part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'user' -%}{{- ' ASSISTANT:' -}}{%- else -%}{{- '</s>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass(frozen=True)
class TinySize:
    text_hidden: int
    text_layers: int
    text_intermediate: int
    text_heads: int
    vision_hidden: int
    vision_layers: int
    vocab_size: int
    image_size: int = 32
    patch_size: int = 8


SIZES = {
    # ~0.4M parameters: unit and integration tests.
    "tiny": TinySize(64, 2, 128, 4, 32, 2, 2048),
    # ~1.3M parameters: the CPU demo (big enough to learn the synthetic benchmark in minutes).
    "demo": TinySize(128, 2, 256, 4, 64, 2, 2048),
    # >=10M parameters: benchmarks, where compute must dominate Python overhead.
    "small": TinySize(320, 6, 1280, 5, 128, 4, 2048),
}


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (byte fallback covers any other text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="right",
        model_max_length=2048,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )


def default_corpus() -> list[str]:
    from .refusals import BUILTIN_REFUSALS
    from .synthetic import tokenizer_corpus

    return [LLAVA_SYSTEM, "USER: ASSISTANT:", *BUILTIN_REFUSALS, *tokenizer_corpus()]


def build_llava(size: str = "tiny", seed: int = 0):
    """Return (model, processor) of a randomly initialised LLaVA-1.5-style model."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    if size not in SIZES:
        raise ValueError(f"unknown size '{size}'; choose one of {', '.join(SIZES)}")
    spec = SIZES[size]
    tokenizer = train_tokenizer(default_corpus(), spec.vocab_size)
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
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 2,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
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
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, processor


def write_tiny_model(
    out_dir: str | Path, family: str = "llava", size: str = "tiny", seed: int = 0, overwrite: bool = False
) -> int:
    """Build and save a checkpoint into ``out_dir`` atomically; returns the parameter count."""
    builders = {"llava": build_llava}
    if family not in builders:
        raise ValueError(f"unknown model family '{family}'; choose one of {', '.join(builders)}")
    model, processor = builders[family](size=size, seed=seed)
    with atomic_directory(out_dir, overwrite=overwrite) as scratch:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return sum(p.numel() for p in model.parameters())
