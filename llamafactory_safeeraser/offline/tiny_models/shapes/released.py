"""The released checkpoints the shape models copy: config, tokenizer and processor facts (standard library only).

Written from each model's published ``config.json``, tokenizer and processor files, in transformers 5's key
names (``rope_parameters`` holds what the files call ``rope_theta`` / ``rope_scaling``). The shape builders
take every value from here and change only the layer counts; ``tests/offline/test_shape_models.py`` checks the
built configs field by field against its own table of the same facts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# CLIP's image normalisation (LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL, Mllama)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ReleasedTokenizer:
    """What a released tokenizer does with special tokens.

    ``kind`` names the tokenization scheme the offline twin reproduces: ``llama2`` (SentencePiece-style BPE
    with byte fallback; a ``▁`` word marker written before the first word of every encode call), ``qwen2`` and
    ``llama3`` (byte-level BPE after a regex split, nothing prepended), ``gemma`` (SentencePiece-style BPE with
    byte fallback, spaces as ``▁``, no marker prepended). ``tokens`` maps every id the model's configs or
    templates name to its token; the learned pieces fill ``base_vocab_size`` ids below the first added token.
    """

    kind: str
    base_vocab_size: int
    tokens: dict[int, str]
    bos_token: str | None
    eos_token: str
    pad_token: str | None
    unk_token: str | None
    adds_bos: bool  # whether encoding a text (default arguments) puts the BOS first
    image_token: str
    named: dict[str, str] = field(default_factory=dict)  # more tokens the processor reads by name (boi_token, ...)
    extra: dict[str, Any] = field(default_factory=dict)  # tokenizer_config keys the twin copies as released

    def id_of(self, token: str) -> int:
        return next(token_id for token_id, text in self.tokens.items() if text == token)

    @property
    def named_tokens(self) -> dict[str, str]:
        """The tokens the processor reads by name (the tokenizer's ``extra_special_tokens``)."""
        return {"image_token": self.image_token, **self.named}


@dataclass(frozen=True)
class ReleasedModel:
    hub_id: str
    family: str
    dtype: str  # the checkpoint's dtype (config.json "torch_dtype")
    config: dict[str, Any]  # top-level config keys besides the two sub-configs
    text_config: dict[str, Any]
    vision_config: dict[str, Any]
    tokenizer: ReleasedTokenizer
    processor: dict[str, Any]  # processor_config.json / preprocessor_config.json
    generation: dict[str, Any]  # generation_config.json's token ids

    def layer_counts(self) -> tuple[int, int]:
        """(language, vision) layers as released; the Qwen towers count theirs as ``depth``."""
        vision = self.vision_config
        return self.text_config["num_hidden_layers"], vision.get("depth", vision.get("num_hidden_layers"))


LLAVA_TOKENIZER = ReleasedTokenizer(
    kind="llama2",
    base_vocab_size=32000,
    tokens={0: "<unk>", 1: "<s>", 2: "</s>", 32000: "<image>", 32001: "<pad>"},
    bos_token="<s>",
    eos_token="</s>",
    pad_token="<pad>",
    unk_token="<unk>",
    adds_bos=True,
    image_token="<image>",
    extra={"legacy": False, "add_bos_token": True, "add_eos_token": False},
)

_LLAVA_VISION = {  # CLIP ViT-L/14 at 336 px (openai/clip-vit-large-patch14-336)
    "model_type": "clip_vision_model",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_LLAVA_TOP = {
    "image_token_index": 32000,
    "pad_token_id": 32001,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "tie_word_embeddings": False,
}
_LLAVA_GENERATION = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 32001}
_LLAVA_PROCESSOR = {
    "patch_size": 14,
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,  # CLIP's CLS token, dropped by the "default" strategy
    "image_token": "<image>",
    "image_processor": {
        "size": {"shortest_edge": 336},
        "crop_size": {"height": 336, "width": 336},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "resample": 3,  # bicubic
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    },
}


def _llama2_text(hidden: int, intermediate: int, heads: int, layers: int) -> dict[str, Any]:
    """Vicuna-1.5 (Llama-2) as LLaVA-1.5 ships it: 32,064 embedding rows for a 32,002-token tokenizer."""
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "num_hidden_layers": layers,
        "vocab_size": 32064,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
    }


LLAVA_1_5_7B = ReleasedModel(
    hub_id="llava-hf/llava-1.5-7b-hf",
    family="llava",
    dtype="float16",
    config=_LLAVA_TOP,
    text_config=_llama2_text(4096, 11008, 32, 32),
    vision_config=_LLAVA_VISION,
    tokenizer=LLAVA_TOKENIZER,
    processor=_LLAVA_PROCESSOR,
    generation=_LLAVA_GENERATION,
)
LLAVA_1_5_13B = ReleasedModel(
    hub_id="llava-hf/llava-1.5-13b-hf",
    family="llava",
    dtype="float16",
    config=_LLAVA_TOP,
    text_config=_llama2_text(5120, 13824, 40, 40),
    vision_config=_LLAVA_VISION,
    tokenizer=LLAVA_TOKENIZER,
    processor=_LLAVA_PROCESSOR,
    generation=_LLAVA_GENERATION,
)

QWEN2_VL_TOKENIZER = ReleasedTokenizer(
    kind="qwen2",
    base_vocab_size=151643,
    tokens={
        151643: "<|endoftext|>",
        151644: "<|im_start|>",
        151645: "<|im_end|>",
        151646: "<|object_ref_start|>",
        151647: "<|object_ref_end|>",
        151648: "<|box_start|>",
        151649: "<|box_end|>",
        151650: "<|quad_start|>",
        151651: "<|quad_end|>",
        151652: "<|vision_start|>",
        151653: "<|vision_end|>",
        151654: "<|vision_pad|>",
        151655: "<|image_pad|>",
        151656: "<|video_pad|>",
    },
    bos_token=None,
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    unk_token=None,
    adds_bos=False,
    image_token="<|image_pad|>",
    extra={"model_max_length": 32768, "errors": "replace"},
)

# Qwen2-7B, the language model of Qwen2-VL-7B and Qwen2.5-VL-7B (their configs differ in model_type and context)
_QWEN2_7B_TEXT = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "num_hidden_layers": 28,
    "vocab_size": 152064,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    "hidden_act": "silu",
    "sliding_window": 32768,
    "use_sliding_window": False,
    "max_window_layers": 28,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}


QWEN2_VL_7B = ReleasedModel(
    hub_id="Qwen/Qwen2-VL-7B-Instruct",
    family="qwen2_vl",
    dtype="bfloat16",
    config={
        "image_token_id": 151655,
        "video_token_id": 151656,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "tie_word_embeddings": False,
    },
    text_config={"model_type": "qwen2_vl_text", **_QWEN2_7B_TEXT, "max_position_embeddings": 32768},
    vision_config={
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": 3584,  # the merger's output: the language model's width
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "hidden_act": "quick_gelu",
    },
    tokenizer=QWEN2_VL_TOKENIZER,
    processor={
        "image_processor": {
            "min_pixels": 3136,  # 56 x 56
            "max_pixels": 12845056,  # 14 x 14 x 4 x 16384
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
        },
    },
    generation={"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643},
)

# Llama 3's 256 reserved special tokens (128000-128255); the ones with a role are named, as released
_LLAMA3_NAMED = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128004: "<|finetune_right_pad_id|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
    128256: "<|image|>",
}


def _llama3_tokens() -> dict[int, str]:
    reserved = (token_id for token_id in range(128000, 128256) if token_id not in _LLAMA3_NAMED)
    tokens = {token_id: f"<|reserved_special_token_{n}|>" for n, token_id in enumerate(reserved)}
    return dict(sorted({**tokens, **_LLAMA3_NAMED}.items()))


MLLAMA_TOKENIZER = ReleasedTokenizer(
    kind="llama3",
    base_vocab_size=128000,
    tokens=_llama3_tokens(),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
    pad_token="<|finetune_right_pad_id|>",
    unk_token=None,
    adds_bos=True,
    image_token="<|image|>",
    extra={"model_max_length": 131072},
)

LLAMA_3_2_11B_VISION = ReleasedModel(
    hub_id="meta-llama/Llama-3.2-11B-Vision-Instruct",
    family="mllama",
    dtype="bfloat16",
    config={"image_token_index": 128256},
    text_config={
        "model_type": "mllama_text_model",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 40,  # 32 self-attention + 8 cross-attention layers
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "vocab_size": 128256,  # the input embedding has 8 more rows (transformers adds them)
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "hidden_act": "silu",
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "pad_token_id": 128004,
        "tie_word_embeddings": False,
    },
    vision_config={
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "attention_heads": 16,
        "image_size": 560,  # one tile
        "patch_size": 14,
        "max_num_tiles": 4,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "vision_output_dim": 7680,  # 1280 x (1 + 5 intermediate layers)
        "norm_eps": 1e-5,
        "num_channels": 3,
        "hidden_act": "gelu",
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    },
    tokenizer=MLLAMA_TOKENIZER,
    processor={
        "image_processor": {
            "size": {"height": 560, "width": 560},
            "max_image_tiles": 4,
            "resample": 2,  # bilinear
            "do_pad": True,
            "do_convert_rgb": True,
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
        },
    },
    generation={"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "pad_token_id": 128004},
)

# ----- Qwen2.5-VL, Qwen3-VL, Gemma 3, InternVL 3, LLaVA-NeXT ----------------------------------------------

# Qwen2.5's tokenizer: Qwen2-VL's tokens, then tool-call and fill-in-the-middle tokens (151,665 in all)
_QWEN2_5_TOKENS = {
    **QWEN2_VL_TOKENIZER.tokens,
    151657: "<tool_call>",
    151658: "</tool_call>",
    151659: "<|fim_prefix|>",
    151660: "<|fim_middle|>",
    151661: "<|fim_suffix|>",
    151662: "<|fim_pad|>",
    151663: "<|repo_name|>",
    151664: "<|file_sep|>",
}
QWEN2_5_VL_TOKENIZER = dataclasses.replace(
    QWEN2_VL_TOKENIZER, tokens=_QWEN2_5_TOKENS, extra={"model_max_length": 131072, "errors": "replace"}
)
# Qwen3's: Qwen2.5's, then tool-response and thinking tokens (151,669 in all)
QWEN3_TOKENIZER = dataclasses.replace(
    QWEN2_VL_TOKENIZER,
    tokens={
        **_QWEN2_5_TOKENS,
        151665: "<tool_response>",
        151666: "</tool_response>",
        151667: "<think>",
        151668: "</think>",
    },
    extra={"model_max_length": 262144, "errors": "replace"},
)
_QWEN_VL_TOKEN_IDS = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "tie_word_embeddings": False,
}
_QWEN_GENERATION = {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643}

QWEN2_5_VL_7B = ReleasedModel(
    hub_id="Qwen/Qwen2.5-VL-7B-Instruct",
    family="qwen2_5_vl",
    dtype="bfloat16",
    config=_QWEN_VL_TOKEN_IDS,
    text_config={"model_type": "qwen2_5_vl_text", **_QWEN2_7B_TEXT, "max_position_embeddings": 128000},
    vision_config={
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "out_hidden_size": 3584,  # the merger's output: the language model's width
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,  # window attention over 112 px (8 x 8 patches) ...
        "fullatt_block_indexes": [7, 15, 23, 31],  # ... except in these blocks
        "tokens_per_second": 2,
        "hidden_act": "silu",
    },
    tokenizer=QWEN2_5_VL_TOKENIZER,
    processor=QWEN2_VL_7B.processor,  # the same image processor settings
    generation=_QWEN_GENERATION,
)

QWEN3_VL_8B = ReleasedModel(
    hub_id="Qwen/Qwen3-VL-8B-Instruct",
    family="qwen3_vl",
    dtype="bfloat16",
    config=_QWEN_VL_TOKEN_IDS,
    text_config={
        "model_type": "qwen3_vl_text",
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_hidden_layers": 36,
        "vocab_size": 151936,
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    vision_config={
        "depth": 27,
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "out_hidden_size": 4096,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,  # a 48 x 48 grid of learned positions, interpolated
        "deepstack_visual_indexes": [8, 16, 24],  # vision layers whose features enter language layers 0, 1, 2
        "hidden_act": "gelu_pytorch_tanh",
    },
    tokenizer=QWEN3_TOKENIZER,
    processor={
        "image_processor": {
            "min_pixels": 65536,  # 256 x 256
            "max_pixels": 16777216,  # 4096 x 4096
            "patch_size": 16,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": (0.5, 0.5, 0.5),
            "image_std": (0.5, 0.5, 0.5),
        },
        "video_processor": {"min_pixels": 4096, "max_pixels": 25165824, "fps": 2, "min_frames": 4, "max_frames": 768},
    },
    generation=_QWEN_GENERATION,
)


GEMMA3_TOKENIZER = ReleasedTokenizer(
    kind="gemma",
    base_vocab_size=262144,
    tokens={  # the ones with a role; the others are pieces and unused slots
        0: "<pad>",
        1: "<eos>",
        2: "<bos>",
        3: "<unk>",
        4: "<mask>",
        105: "<start_of_turn>",
        106: "<end_of_turn>",
        255999: "<start_of_image>",
        256000: "<end_of_image>",
        262144: "<image_soft_token>",
    },
    bos_token="<bos>",
    eos_token="<eos>",
    pad_token="<pad>",
    unk_token="<unk>",
    adds_bos=True,
    image_token="<image_soft_token>",
    named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
    extra={"add_bos_token": True, "add_eos_token": False, "spaces_between_special_tokens": False},
)

GEMMA_3_12B = ReleasedModel(
    hub_id="google/gemma-3-12b-it",
    family="gemma3",
    dtype="bfloat16",
    config={
        "image_token_index": 262144,
        "boi_token_index": 255999,
        "eoi_token_index": 256000,
        "mm_tokens_per_image": 256,
        "eos_token_id": [1, 106],
    },
    text_config={
        "hidden_size": 3840,
        "intermediate_size": 15360,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "num_hidden_layers": 48,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,  # every sixth layer attends globally, the others over 1,024 tokens
        "vocab_size": 262208,  # embedding rows for a 262,145-token tokenizer
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        "hidden_activation": "gelu_pytorch_tanh",
        "final_logit_softcapping": None,
        "attn_logit_softcapping": None,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
    },
    vision_config={  # SigLIP So400m/14 at 896 px, without its pooling head
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "image_size": 896,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "vision_use_head": False,
    },
    tokenizer=GEMMA3_TOKENIZER,
    processor={
        "image_seq_length": 256,
        "image_processor": {
            "size": {"height": 896, "width": 896},
            "resample": 2,  # bilinear
            "do_convert_rgb": None,
            "do_pan_and_scan": None,
            "pan_and_scan_min_crop_size": 256,
            "pan_and_scan_max_num_crops": 4,
            "pan_and_scan_min_ratio_to_activate": 1.2,
            "image_mean": (0.5, 0.5, 0.5),
            "image_std": (0.5, 0.5, 0.5),
        },
    },
    generation={"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0},
)

# InternVL 3's tokenizer: Qwen2.5's, then the image and grounding tokens (151,674 in all)
INTERNVL3_TOKENIZER = dataclasses.replace(
    QWEN2_5_VL_TOKENIZER,
    tokens={
        **_QWEN2_5_TOKENS,
        151665: "<img>",
        151666: "</img>",
        151667: "<IMG_CONTEXT>",
        151668: "<quad>",
        151669: "</quad>",
        151670: "<ref>",
        151671: "</ref>",
        151672: "<box>",
        151673: "</box>",
    },
    image_token="<IMG_CONTEXT>",
    # InternVLProcessor needs a video_token; transformers 5 adds the named "<video>" after the 151,674 ids (no
    # embedding row: the processor writes video frames as image tokens, so it never reaches the model)
    named={
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    },
    extra={"model_max_length": 8192, "errors": "replace"},
)

INTERNVL3_8B = ReleasedModel(
    hub_id="OpenGVLab/InternVL3-8B-hf",
    family="intern_vl",
    dtype="bfloat16",
    config={
        "image_token_id": 151667,
        "image_seq_length": 256,
        "downsample_ratio": 0.5,  # pixel shuffle: 32 x 32 patches become 16 x 16 tokens
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
    },
    text_config={  # Qwen2.5-7B
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "num_hidden_layers": 28,
        "vocab_size": 151674,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0},
        "hidden_act": "silu",
        "use_sliding_window": False,
        "max_window_layers": 70,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "tie_word_embeddings": False,
    },
    vision_config={  # InternViT-300M-448px-V2.5
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "image_size": [448, 448],
        "patch_size": [14, 14],
        "num_channels": 3,
        "attention_bias": True,
        "use_qk_norm": False,
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "layer_scale_init_value": 0.1,
        "use_absolute_position_embeddings": True,
        "use_mean_pooling": True,
        "hidden_act": "gelu",
    },
    tokenizer=INTERNVL3_TOKENIZER,
    processor={
        "image_seq_length": 256,
        "image_processor": {
            "size": {"height": 448, "width": 448},
            "crop_to_patches": False,  # LLaMA-Factory tiles only with its crop_to_patches key
            "min_patches": 1,
            "max_patches": 12,
            "resample": 3,  # bicubic
            "do_convert_rgb": True,
            "image_mean": (0.485, 0.456, 0.406),  # ImageNet's
            "image_std": (0.229, 0.224, 0.225),
        },
    },
    generation={"bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643},
)

# llava-hf's LLaVA-NeXT (Vicuna-7B) tokenizer: Llama 2's with <image>; its pad is <unk>
LLAVA_NEXT_TOKENIZER = dataclasses.replace(
    LLAVA_TOKENIZER,
    tokens={0: "<unk>", 1: "<s>", 2: "</s>", 32000: "<image>"},
    pad_token="<unk>",
)

# the tile grids (px) "any resolution" picks from, in the config and the image processor
_LLAVA_NEXT_GRIDS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]

LLAVA_NEXT_VICUNA_7B = ReleasedModel(
    hub_id="llava-hf/llava-v1.6-vicuna-7b-hf",
    family="llava_next",
    dtype="float16",
    config={
        "image_token_index": 32000,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "image_grid_pinpoints": _LLAVA_NEXT_GRIDS,
        "tie_word_embeddings": False,
    },
    text_config={**_llama2_text(4096, 11008, 32, 32), "pad_token_id": 0},
    vision_config=_LLAVA_VISION,
    tokenizer=LLAVA_NEXT_TOKENIZER,
    processor={
        "patch_size": 14,
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,
        "image_token": "<image>",
        "image_processor": {
            **_LLAVA_PROCESSOR["image_processor"],
            "image_grid_pinpoints": _LLAVA_NEXT_GRIDS,
            "do_pad": True,
        },
    },
    generation={"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
)

# (family, size) -> the released model that size copies
RELEASED = {
    ("llava", "shape7b"): LLAVA_1_5_7B,
    ("llava", "shape13b"): LLAVA_1_5_13B,
    ("qwen2_vl", "shape7b"): QWEN2_VL_7B,
    ("mllama", "shape11b"): LLAMA_3_2_11B_VISION,
    ("qwen2_5_vl", "shape7b"): QWEN2_5_VL_7B,
    ("qwen3_vl", "shape8b"): QWEN3_VL_8B,
    ("gemma3", "shape12b"): GEMMA_3_12B,
    ("intern_vl", "shape8b"): INTERNVL3_8B,
    ("llava_next", "shape7b"): LLAVA_NEXT_VICUNA_7B,
}
