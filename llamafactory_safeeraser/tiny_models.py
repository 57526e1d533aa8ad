"""Complete Hugging Face checkpoints built offline from a config: tokenizer, processor, weights.

Tests, benchmarks and the CPU demo cannot download ``llava-hf/llava-1.5-7b-hf``; they use
these instead. The checkpoint has the same architecture and file layout as the real one, so
the same loading code (LLaMA-Factory, lm-eval ``hf-multimodal``, ``AutoModelForImageTextToText``)
serves both. Deterministic for a given seed.

Families (``FAMILIES``): ``llava`` (LLaVA-1.5), ``qwen2_vl`` (Qwen2-VL) and ``mllama``
(Llama-3.2-Vision), each with a locally trained tokenizer holding the family's special tokens, the
family's processor sized for 32 px images, and a chat template that renders the LLaMA-Factory
template it trains with. docs/models.md says how to add one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SafeEraserError
from .fileio import atomic_directory


@dataclass(frozen=True)
class ChatFormat:
    """A LLaMA-Factory template's text pieces, as the model's chat template renders them.

    ``image`` is what one image part of a user turn becomes: the user content ``"<image>\\n" + question``
    after the template's multimodal plugin, with the image token not yet expanded (the processor
    expands it). tests/test_model_families.py checks every family's chat template against
    ``lmf.render_user_prompt``, i.e. against LLaMA-Factory's own template.
    """

    default_system: str
    system_open: str
    system_close: str
    user_open: str
    user_close: str  # LLaMA-Factory's user slot also opens the assistant turn
    assistant_close: str
    image: str
    prefix: str = ""


def chat_template(fmt: ChatFormat) -> str:
    """A Jinja chat template for ``fmt`` (system turn optional; the default system when none is given)."""
    q = json.dumps  # a JSON string is also a valid Jinja string literal, escapes included
    return (
        "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] if messages[0]['content'] is string "
        "else messages[0]['content'][0]['text'] -%}{%- set messages = messages[1:] -%}"
        "{%- else -%}{%- set system = " + q(fmt.default_system) + " -%}{%- endif -%}"
        "{{- " + q(fmt.prefix) + " -}}"
        "{%- if system -%}{{- " + q(fmt.system_open) + " + system + " + q(fmt.system_close) + " -}}{%- endif -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{{- " + q(fmt.user_open) + " -}}{%- endif -%}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{- " + q(fmt.image) + " -}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{%- if message['role'] == 'user' -%}{{- " + q(fmt.user_close) + " -}}"
        "{%- else -%}{{- " + q(fmt.assistant_close) + " -}}{%- endif -%}"
        "{%- endfor -%}"
    )


@dataclass(frozen=True)
class TokenizerSpec:
    """The special tokens of a family's tokenizer; they take the first ids, in this order."""

    special_tokens: tuple[str, ...]
    bos_token: str | None
    eos_token: str
    pad_token: str
    unk_token: str | None
    named_tokens: dict[str, str] = field(default_factory=dict)  # e.g. image_token, read by the processors
    corpus: tuple[str, ...] = ()  # template texts the BPE should learn besides the synthetic benchmark


# ----- LLaVA-1.5 (LLaMA-Factory template `llava`) ---------------------------------------------------
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

# ----- Qwen2-VL (template `qwen2_vl`; its plugin wraps the image pads in vision start/end) ------------
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

# ----- Llama-3.2-Vision (template `mllama`: BOS prefix, no default system, one <|image|> per image) ----
MLLAMA_FORMAT = ChatFormat(
    "",
    "<|start_header_id|>system<|end_header_id|>\n\n",
    "<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\n",
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|eot_id|>",
    image="<|image|>\n",
    prefix="<|begin_of_text|>",
)
MLLAMA_TOKENS = TokenizerSpec(
    special_tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|python_tag|>",
        "<|finetune_right_pad_id|>",
        "<|image|>",
    ),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",  # what LLaMA-Factory's template sets (replace_eos)
    pad_token="<|finetune_right_pad_id|>",
    unk_token=None,
    named_tokens={"image_token": "<|image|>"},
    corpus=("system\n\nuser\n\nassistant\n\n",),
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


def train_tokenizer(
    texts: list[str], vocab_size: int, spec: TokenizerSpec = LLAVA_TOKENS, template: str | None = None
) -> Any:
    """Byte-level BPE trained on ``texts`` (byte fallback covers any other text), with ``spec``'s special tokens.

    The tokenizer adds no BOS by itself: LLaMA-Factory writes the BOS where its template has one.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=spec.unk_token))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(spec.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=spec.unk_token,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        extra_special_tokens=dict(spec.named_tokens),
        padding_side="right",
        model_max_length=2048,
        chat_template=LLAVA_CHAT_TEMPLATE if template is None else template,
    )


def default_corpus(spec: TokenizerSpec = LLAVA_TOKENS) -> list[str]:
    """The synthetic benchmark's texts, the built-in refusals and the family's template texts."""
    from .refusals import BUILTIN_REFUSALS
    from .synthetic import tokenizer_corpus

    return [*spec.corpus, *BUILTIN_REFUSALS, *tokenizer_corpus()]


# Sizes each family is built in: the new families only for tests, LLaVA also for the demo and benchmarks.
FAMILY_SIZES = {"llava": tuple(SIZES), "qwen2_vl": ("tiny",), "mllama": ("tiny",)}


class ModelSpecError(SafeEraserError, ValueError):
    """An unknown family, or a size that family is not built in."""


def _tiny_size(size: str, family: str) -> TinySize:
    if family not in FAMILY_SIZES:
        raise ModelSpecError(f"unknown model family '{family}'; choose one of {', '.join(FAMILY_SIZES)}")
    allowed = FAMILY_SIZES[family]
    if size not in allowed:
        raise ModelSpecError(f"unknown size '{size}' for family '{family}'; choose one of {', '.join(allowed)}")
    return SIZES[size]


def build_llava(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
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

    spec = _tiny_size(size, "llava")
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
    _set_generation_tokens(model, tokenizer)
    return model, processor


def _set_generation_tokens(model: Any, tokenizer: Any) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id


def mrope_section(head_dim: int) -> list[int]:
    """Qwen2-VL's split of the rotary half-dimension into (temporal, height, width); [16, 24, 24] at 128."""
    half = head_dim // 2
    spatial = 3 * half // 8
    return [half - 2 * spatial, spatial, spatial]


def build_qwen2_vl(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Qwen2-VL-style model.

    A 32 px image is 4x4 patches of 8 px; merging 2x2 patches gives 4 image tokens, wrapped by the
    `qwen2_vl` plugin in <|vision_start|> ... <|vision_end|>.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    spec = _tiny_size(size, "qwen2_vl")
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
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_heads,
        "max_position_embeddings": 2048,
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
    _set_generation_tokens(model, tokenizer)
    return model, processor


def build_mllama(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised Llama-3.2-Vision-style (Mllama) model.

    The image enters through cross-attention (text layer 1 here), not as tokens: the prompt holds one
    <|image|>. A 32 px image is one 32 px tile of 4x4 patches; the processor pads to 4 tiles as the real one.
    """
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    spec = _tiny_size(size, "mllama")
    template = chat_template(MLLAMA_FORMAT)
    tokenizer = train_tokenizer(default_corpus(MLLAMA_TOKENS), spec.vocab_size, MLLAMA_TOKENS, template)
    image_processor = MllamaImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size}, max_image_tiles=4
    )
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    intermediate_layers = list(range(spec.vision_layers))  # the real model taps 5 of its 32 layers
    vision = {
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_hidden * 2,
        "num_hidden_layers": spec.vision_layers,
        "num_global_layers": 1,
        "attention_heads": 2,
        "image_size": spec.image_size,  # the tile size
        "patch_size": spec.patch_size,
        "max_num_tiles": 4,
        "intermediate_layers_indices": intermediate_layers,
        "vision_output_dim": spec.vision_hidden * (1 + len(intermediate_layers)),
    }
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers + 1,
        "cross_attention_layers": [1],  # self, cross, self
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_heads,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    # Mllama's tanh gates start at 0, which shuts out the image (cross-attention) and the tile/position
    # embeddings until training opens them; a pretrained model has them open. Open them all at pi/4,
    # the value transformers gives the vision encoder's own gates.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.numel() == 1 and "gate" in name.rsplit(".", 1)[-1]:
                parameter.fill_(math.pi / 4)
    _set_generation_tokens(model, tokenizer)
    return model, processor


# family -> (builder, the LLaMA-Factory template to train it with)
FAMILIES: dict[str, tuple[Callable[..., tuple[Any, Any]], str]] = {
    "llava": (build_llava, "llava"),
    "qwen2_vl": (build_qwen2_vl, "qwen2_vl"),
    "mllama": (build_mllama, "mllama"),
}


def write_tiny_model(
    out_dir: str | Path, family: str = "llava", size: str = "tiny", seed: int = 0, overwrite: bool = False
) -> int:
    """Build and save a checkpoint into ``out_dir`` atomically; returns the parameter count."""
    _tiny_size(size, family)  # before the heavy imports of the builder
    model, processor = FAMILIES[family][0](size=size, seed=seed)
    with atomic_directory(out_dir, overwrite=overwrite) as scratch:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return sum(p.numel() for p in model.parameters())
