"""Shape models: the released checkpoints' configurations, tokenizers and processors, with fewer layers.

The tables below are the released models' published facts (config.json, tokenizer and processor files,
the model pages' parameter counts), written here independently of the builder's own copy
(``shapes/released.py``). Configs are compared field by field; tokenizers and processors are built
(without weights, in seconds) and checked on what they do. Building and training whole shape models
is the `shape` tier (tests/e2e/test_shape_recipes.py).
"""

from __future__ import annotations

import pytest
import torch
from conftest import BIN, run_cli
from PIL import Image

from llamafactory_safeeraser.offline.tiny_models import ModelSpecError, write_tiny_model
from llamafactory_safeeraser.offline.tiny_models.shapes import resolve_layers, shape_config

SHAPES = [
    ("llava", "shape7b"),
    ("llava", "shape13b"),
    ("qwen2_vl", "shape7b"),
    ("mllama", "shape11b"),
    ("qwen2_5_vl", "shape7b"),
    ("qwen3_vl", "shape8b"),
    ("gemma3", "shape12b"),
    ("intern_vl", "shape8b"),
    ("llava_next", "shape7b"),
]
IDS = [f"{family}-{size}" for family, size in SHAPES]

CLIP_VIT_L_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
LLAVA_TOP = {
    "image_token_index": 32000,
    "pad_token_id": 32001,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "tie_word_embeddings": False,
}
LLAVA_TEXT = {"vocab_size": 32064, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "hidden_act": "silu"}
QWEN_VL_TOKEN_IDS = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "tie_word_embeddings": False,
}
# (family, size) -> {"top" | "text" | "vision": {field: released value}}; rope values under "rope"
RELEASED = {
    ("llava", "shape7b"): {  # llava-hf/llava-1.5-7b-hf
        "top": LLAVA_TOP,
        "text": {
            **LLAVA_TEXT,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "num_hidden_layers": 32,
        },
        "vision": CLIP_VIT_L_336,
        "rope": {"rope_theta": 10000.0},
    },
    ("llava", "shape13b"): {  # llava-hf/llava-1.5-13b-hf
        "top": LLAVA_TOP,
        "text": {
            **LLAVA_TEXT,
            "hidden_size": 5120,
            "intermediate_size": 13824,
            "num_attention_heads": 40,
            "num_key_value_heads": 40,
            "num_hidden_layers": 40,
        },
        "vision": CLIP_VIT_L_336,
        "rope": {"rope_theta": 10000.0},
    },
    ("qwen2_vl", "shape7b"): {  # Qwen/Qwen2-VL-7B-Instruct
        "top": {
            "image_token_id": 151655,
            "video_token_id": 151656,
            "vision_start_token_id": 151652,
            "vision_end_token_id": 151653,
            "tie_word_embeddings": False,
        },
        "text": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "num_hidden_layers": 28,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
        "vision": {
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 3584,
            "mlp_ratio": 4,
            "num_heads": 16,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "rope": {"rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    },
    ("mllama", "shape11b"): {  # meta-llama/Llama-3.2-11B-Vision-Instruct
        "top": {"image_token_index": 128256},
        "text": {
            "vocab_size": 128256,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "num_hidden_layers": 40,
            "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009],
            "pad_token_id": 128004,
        },
        "vision": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_global_layers": 8,
            "attention_heads": 16,
            "image_size": 560,
            "patch_size": 14,
            "max_num_tiles": 4,
            "intermediate_layers_indices": [3, 7, 15, 23, 30],
            "vision_output_dim": 7680,
        },
        "rope": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    },
    ("qwen2_5_vl", "shape7b"): {  # Qwen/Qwen2.5-VL-7B-Instruct
        "top": QWEN_VL_TOKEN_IDS,
        "text": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "num_hidden_layers": 28,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "out_hidden_size": 3584,
            "num_heads": 16,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        },
        "rope": {"rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    },
    ("qwen3_vl", "shape8b"): {  # Qwen/Qwen3-VL-8B-Instruct
        "top": QWEN_VL_TOKEN_IDS,
        "text": {
            "vocab_size": 151936,
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "num_hidden_layers": 36,
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
        "vision": {
            "depth": 27,
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "out_hidden_size": 4096,
            "num_heads": 16,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [8, 16, 24],
            "hidden_act": "gelu_pytorch_tanh",
        },
        "rope": {"rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True},
    },
    ("gemma3", "shape12b"): {  # google/gemma-3-12b-it
        "top": {
            "image_token_index": 262144,
            "boi_token_index": 255999,
            "eoi_token_index": 256000,
            "mm_tokens_per_image": 256,
        },
        "text": {
            "vocab_size": 262208,
            "hidden_size": 3840,
            "intermediate_size": 15360,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "query_pre_attn_scalar": 256,
            "num_hidden_layers": 48,
            "sliding_window": 1024,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-6,
            "hidden_activation": "gelu_pytorch_tanh",
            "final_logit_softcapping": None,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "pad_token_id": 0,
        },
        "vision": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_attention_heads": 16,
            "num_hidden_layers": 27,
            "image_size": 896,
            "patch_size": 14,
            "vision_use_head": False,
        },
        "rope": {
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
    },
    ("intern_vl", "shape8b"): {  # OpenGVLab/InternVL3-8B-hf
        "top": {
            "image_token_id": 151667,
            "image_seq_length": 256,
            "downsample_ratio": 0.5,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -1,
            "vision_feature_select_strategy": "default",
            "tie_word_embeddings": False,
        },
        "text": {
            "vocab_size": 151674,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "num_hidden_layers": 28,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
        "vision": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 24,
            "image_size": [448, 448],
            "patch_size": [14, 14],
            "attention_bias": True,
            "use_qk_norm": False,
            "layer_scale_init_value": 0.1,
            "use_mean_pooling": True,
        },
        "rope": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0},
    },
    ("llava_next", "shape7b"): {  # llava-hf/llava-v1.6-vicuna-7b-hf
        "top": {
            "image_token_index": 32000,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
            "tie_word_embeddings": False,
        },
        "text": {
            **LLAVA_TEXT,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "num_hidden_layers": 32,
            "pad_token_id": 0,
        },
        "vision": CLIP_VIT_L_336,
        "rope": {"rope_theta": 10000.0},
    },
}
# the model pages' parameter counts, to their published precision (billions)
PUBLISHED_PARAMETERS = {
    ("llava", "shape7b"): 7.06,
    ("llava", "shape13b"): 13.4,
    ("qwen2_vl", "shape7b"): 8.29,
    ("mllama", "shape11b"): 10.7,
    ("qwen2_5_vl", "shape7b"): 8.29,
    ("qwen3_vl", "shape8b"): 8.77,
    ("gemma3", "shape12b"): 12.2,
    ("intern_vl", "shape8b"): 7.94,
    ("llava_next", "shape7b"): 7.06,
}
# config fields that follow the layer counts (everything else must equal the released model's)
LAYER_FIELDS = {
    "num_hidden_layers",
    "depth",
    "num_global_layers",
    "cross_attention_layers",
    "intermediate_layers_indices",
    "layer_types",
    "fullatt_block_indexes",
    "deepstack_visual_indexes",
}


def fields(config, part: str) -> dict:
    if part == "top":
        return config.to_dict()
    return getattr(config, f"{part}_config").to_dict()


@pytest.mark.parametrize(("family", "size"), SHAPES, ids=IDS)
def test_full_layer_config_is_the_released_config(family: str, size: str) -> None:
    config = shape_config(family, size, "full", "full")
    facts = RELEASED[(family, size)]
    for part in ("top", "text", "vision"):
        built = fields(config, part)
        for key, value in facts[part].items():
            assert built[key] == value, f"{part}.{key}"
    rope = config.text_config.rope_parameters
    assert {key: rope[key] for key in facts["rope"]} == facts["rope"]


@pytest.mark.parametrize(("family", "size"), SHAPES, ids=IDS)
def test_full_size_has_the_published_parameter_count(family: str, size: str) -> None:
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForImageTextToText.from_config(shape_config(family, size, "full", "full"))
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    published = PUBLISHED_PARAMETERS[(family, size)]
    decimals = 3 - len(str(int(published)))  # 7.06 -> 2 decimals, 13.4 -> 1
    assert round(billions, decimals) == published


@pytest.mark.parametrize(("family", "size"), SHAPES, ids=IDS)
def test_cut_config_differs_only_in_layers(family: str, size: str) -> None:
    full, cut = shape_config(family, size, "full", "full"), shape_config(family, size)
    for part in ("text", "vision"):
        a, b = fields(full, part), fields(cut, part)
        assert {key for key in a if a[key] != b.get(key)} <= LAYER_FIELDS, part
    top_a, top_b = full.to_dict(), cut.to_dict()
    assert {k for k in top_a if k not in ("text_config", "vision_config") and top_a[k] != top_b[k]} == set()


def test_default_layers_are_the_fewest_the_architecture_allows() -> None:
    assert resolve_layers("llava", "shape7b", None, None) == (1, 2)  # feature layer -2 is a layer's output
    assert resolve_layers("qwen2_vl", "shape7b", None, None) == (1, 1)
    assert resolve_layers("mllama", "shape11b", None, None) == (2, 1)
    mllama = shape_config("mllama", "shape11b")
    assert mllama.text_config.cross_attention_layers == [1]  # self-attention, then cross-attention
    assert mllama.vision_config.intermediate_layers_indices == [0] * 5  # five taps keep the projector width
    assert mllama.vision_config.num_global_layers == 1
    assert shape_config("mllama", "shape11b", 9, 16).text_config.cross_attention_layers == [3, 8]
    assert shape_config("mllama", "shape11b", 9, 16).vision_config.intermediate_layers_indices == [3, 7, 15, 15, 15]


def test_default_layers_of_the_newer_families_keep_every_kind_of_layer() -> None:
    assert resolve_layers("qwen2_5_vl", "shape7b", None, None) == (1, 2)
    assert shape_config("qwen2_5_vl", "shape7b").vision_config.fullatt_block_indexes == [1]  # window, then full
    assert shape_config("qwen2_5_vl", "shape7b", 1, 16).vision_config.fullatt_block_indexes == [7, 15]
    # DeepStack: three taps on three distinct vision layers, into three language layers
    assert resolve_layers("qwen3_vl", "shape8b", None, None) == (3, 3)
    assert shape_config("qwen3_vl", "shape8b").vision_config.deepstack_visual_indexes == [0, 1, 2]
    assert shape_config("qwen3_vl", "shape8b", 3, 20).vision_config.deepstack_visual_indexes == [8, 16, 19]
    # Gemma 3: a sliding-window layer and a global one; the released pattern where more are kept
    assert resolve_layers("gemma3", "shape12b", None, None) == (2, 1)
    assert shape_config("gemma3", "shape12b").text_config.layer_types == ["sliding_attention", "full_attention"]
    full = shape_config("gemma3", "shape12b", "full", "full").text_config.layer_types
    assert [i for i, kind in enumerate(full) if kind == "full_attention"] == list(range(5, 48, 6))
    assert resolve_layers("intern_vl", "shape8b", None, None) == (1, 1)
    assert resolve_layers("llava_next", "shape7b", None, None) == (1, 2)  # feature layer -2, as LLaVA-1.5


@pytest.mark.parametrize(
    ("text", "vision", "message"),
    [(0, None, "text layers must be 1..32"), (33, None, "text layers must be 1..32"), ("x", None, "a number")],
)
def test_layer_counts_outside_the_architecture_are_refused(text, vision, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        resolve_layers("llava", "shape7b", text, vision)


def test_cli_refuses_layers_for_a_tiny_size_with_one_line(tmp_path) -> None:
    args = ["make-tiny-model", "--size", "tiny", "--text-layers", "2", "--out", str(tmp_path / "m")]
    proc = run_cli([str(BIN / "safeeraser"), *args], timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "safeeraser: error: --text-layers, --vision-layers and --dtype apply to the shape sizes only, not to 'tiny'"
    ]
    assert not (tmp_path / "m").exists()


def test_write_refuses_a_bad_dtype_before_building(tmp_path) -> None:
    with pytest.raises(ModelSpecError, match="dtype must be one of"):
        write_tiny_model(tmp_path / "m", family="llava", size="shape7b", dtype="int8")
    assert not (tmp_path / "m").exists()


# ----- tokenizers and processors, built without weights ----------------------------------------------
@pytest.fixture(scope="module")
def processors(shape_processor_dir):
    """family -> the shape model's processor (tokenizer inside), as ``build_shape`` makes it."""
    from transformers import AutoProcessor

    return {family: AutoProcessor.from_pretrained(shape_processor_dir(family)) for family in TOKENIZERS}


# family -> released tokenizer facts: (length, bos, eos, pad, image token) as (token, id) pairs
TOKENIZERS = {
    "llava": (32002, ("<s>", 1), ("</s>", 2), ("<pad>", 32001), ("<image>", 32000)),
    "qwen2_vl": (151657, None, ("<|im_end|>", 151645), ("<|endoftext|>", 151643), ("<|image_pad|>", 151655)),
    "mllama": (
        128257,
        ("<|begin_of_text|>", 128000),
        ("<|eot_id|>", 128009),
        ("<|finetune_right_pad_id|>", 128004),
        ("<|image|>", 128256),
    ),
    "qwen2_5_vl": (151665, None, ("<|im_end|>", 151645), ("<|endoftext|>", 151643), ("<|image_pad|>", 151655)),
    "qwen3_vl": (151669, None, ("<|im_end|>", 151645), ("<|endoftext|>", 151643), ("<|image_pad|>", 151655)),
    "gemma3": (262145, ("<bos>", 2), ("<eos>", 1), ("<pad>", 0), ("<image_soft_token>", 262144)),
    # 151,674 released ids and the named <video> transformers 5 adds (InternVLProcessor needs the name)
    "intern_vl": (151675, None, ("<|im_end|>", 151645), ("<|endoftext|>", 151643), ("<IMG_CONTEXT>", 151667)),
    "llava_next": (32001, ("<s>", 1), ("</s>", 2), ("<unk>", 0), ("<image>", 32000)),
}


@pytest.mark.parametrize("family", list(TOKENIZERS))
def test_tokenizer_has_the_released_special_tokens_and_adds_bos_as_released(family: str, processors) -> None:
    tokenizer = processors[family].tokenizer
    length, bos, eos, pad, image = TOKENIZERS[family]
    assert len(tokenizer) == length
    for (token, token_id), name in ((eos, "eos"), (pad, "pad"), (image, "image")):
        assert (getattr(tokenizer, f"{name}_token"), getattr(tokenizer, f"{name}_token_id")) == (token, token_id)
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]  # never split
    plain = tokenizer("What is shown?", add_special_tokens=False)["input_ids"]
    encoded = tokenizer("What is shown?")["input_ids"]
    if bos is None:  # Qwen2 has no BOS and adds nothing
        assert tokenizer.bos_token is None and encoded == plain
    else:  # LLaVA-1.5's and LLaVA-NeXT's Llama tokenizer, Llama 3's and Gemma 3's add their BOS on encode
        assert (tokenizer.bos_token, tokenizer.bos_token_id) == bos and encoded == [bos[1], *plain]


def test_llava_tokenizer_marks_word_starts_like_sentencepiece(processors) -> None:
    """Llama-2's scheme: a word marker before the first word of every encode call, byte fallback for the rest."""
    tokenizer = processors["llava"].tokenizer
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode("USER: hi", add_special_tokens=False))
    assert pieces[0].startswith("▁")
    after_image = tokenizer.convert_ids_to_tokens(tokenizer.encode("<image>\nWhat", add_special_tokens=False))
    assert after_image[:2] == ["<image>", "<0x0A>"]  # no marker after a special token; newline as a byte piece
    assert tokenizer.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"]) == [0, 1, 2, 3, 258]


def red_image(side: int) -> Image.Image:
    return Image.new("RGB", (side, side), (200, 10, 10))


def test_llava_processor_expands_one_image_into_576_tokens(processors) -> None:
    processor = processors["llava"]
    for image in (red_image(32), Image.new("RGB", (500, 300), (1, 2, 3))):  # resized and centre-cropped to 336
        inputs = processor(images=[image], text=["USER: <image>\nHi? ASSISTANT:"], return_tensors="pt")
        assert int((inputs["input_ids"] == 32000).sum()) == 576  # (336 / 14)^2, CLS dropped
        assert inputs["pixel_values"].shape == (1, 3, 336, 336)


def test_qwen2_vl_processor_counts_image_tokens_from_the_image_size(processors) -> None:
    processor = processors["qwen2_vl"]
    text = ["<|vision_start|><|image_pad|><|vision_end|>Hi?"]
    for side, tokens in ((336, 144), (32, 4)):  # 24x24 patches merged 2x2; 32 px is raised to min_pixels (56x56)
        inputs = processor(images=[red_image(side)], text=text, return_tensors="pt")
        assert int((inputs["input_ids"] == 151655).sum()) == tokens


def test_mllama_processor_tiles_560_px_and_with_the_released_tokenizer_writes_two_bos(processors) -> None:
    processor = processors["mllama"]
    text = "<|start_header_id|>user<|end_header_id|>\n\n<|image|>Hi?"
    inputs = processor(images=[red_image(336)], text=[text], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 1, 4, 3, 560, 560)  # up to 4 tiles of 560 px
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(128256) == 1
    # MllamaProcessor writes <|begin_of_text|> and the tokenizer adds its own: two (the evaluation runner
    # switches the tokenizer's off, tests/evaluation/test_prompt_tokenization.py)
    assert ids[:3] == [128000, 128000, 128006]


def image_token_runs(ids: list[int], token_id: int) -> list[int]:
    """Lengths of the runs of ``token_id`` in ``ids``: one per image."""
    runs, length = [], 0
    for token in [*ids, None]:
        if token == token_id:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_qwen2_5_vl_processor_counts_image_tokens_as_qwen2_vl(processors) -> None:
    processor = processors["qwen2_5_vl"]
    text = ["<|vision_start|><|image_pad|><|vision_end|>Hi?"]
    for side, tokens in ((336, 144), (32, 4), (500, 324)):  # 14 px patches merged 2 x 2; 500 -> 504 px
        inputs = processor(images=[red_image(side)], text=text, return_tensors="pt")
        assert int((inputs["input_ids"] == 151655).sum()) == tokens


def test_qwen3_vl_processor_merges_16_px_patches_within_its_pixel_budget(processors) -> None:
    processor = processors["qwen3_vl"]
    text = ["<|vision_start|><|image_pad|><|vision_end|>Hi?"]
    # 32 px units: 336 -> 320 px (10 x 10); 32 px is raised to min_pixels (256 x 256: 8 x 8); 500 -> 512 px
    for side, tokens in ((336, 100), (32, 64), (500, 256)):
        inputs = processor(images=[red_image(side)], text=text, return_tensors="pt")
        assert int((inputs["input_ids"] == 151655).sum()) == tokens
        assert inputs["pixel_values"].shape[-1] == 3 * 2 * 16 * 16  # channels x frames x patch


def test_gemma3_processor_writes_256_image_tokens_between_its_markers_for_any_size(processors) -> None:
    processor = processors["gemma3"]
    tokenizer = processor.tokenizer
    for image in (red_image(32), red_image(336), Image.new("RGB", (500, 300), (1, 2, 3))):
        inputs = processor(images=[image], text=["<start_of_turn>user\n<start_of_image>Hi?"], return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        assert image_token_runs(ids, 262144) == [256]
        start = ids.index(255999)
        assert ids[start + 257] == 256000  # <end_of_image> right after the 256 soft tokens
        assert ids[0] == 2 and ids.count(2) == 1  # the tokenizer's BOS, once
        assert inputs["pixel_values"].shape == (1, 3, 896, 896)
    assert tokenizer.decode(ids[start - 2 : start]) == "\n\n"  # the processor wraps the image in blank lines


def test_intern_vl_processor_writes_one_448_px_tile_of_256_tokens(processors) -> None:
    processor = processors["intern_vl"]
    for side in (32, 336):
        inputs = processor(images=[red_image(side)], text=["<|im_start|>user\n<IMG_CONTEXT>\nHi?"], return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        assert image_token_runs(ids, 151667) == [256]
        start = ids.index(151665)  # <img>, then the tokens, then </img>
        assert ids[start + 257] == 151666
        assert inputs["pixel_values"].shape == (1, 3, 448, 448)


def test_llava_next_processor_counts_base_view_grid_and_row_newlines(processors) -> None:
    processor = processors["llava_next"]
    text = ["USER: <image>\nHi? ASSISTANT:"]
    # 576 (base view) + the grid's unpadded features + one newline per feature row: a small square image fits
    # the 336 x 672 grid (24 x 24 + 24), a large one the 672 x 672 grid (48 x 48 + 48)
    for side, tokens, tiles in ((32, 1176, 3), (336, 1176, 3), (672, 2928, 5)):
        inputs = processor(images=[red_image(side)], text=text, return_tensors="pt")
        assert int((inputs["input_ids"] == 32000).sum()) == tokens
        assert inputs["pixel_values"].shape == (1, tiles, 3, 336, 336)  # base view + grid tiles
    assert inputs["input_ids"][0, 0] == 1  # the tokenizer's BOS


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("llava", "USER: <image>\nHi? ASSISTANT:"),
        ("llava_next", "USER: <image>\nHi? ASSISTANT:"),
        (
            "qwen2_5_vl",
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi?<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "qwen3_vl",
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi?<|im_end|>\n<|im_start|>assistant\n",
        ),
        ("gemma3", "<bos><start_of_turn>user\n<start_of_image>Hi?<end_of_turn>\n<start_of_turn>model\n"),
        ("intern_vl", "<|im_start|>user\n<IMG_CONTEXT>\nHi?<|im_end|>\n<|im_start|>assistant\n"),
        (
            "qwen2_vl",
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi?<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "mllama",
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Hi?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
    ],
)
def test_chat_template_renders_the_released_format(family: str, expected: str, processors) -> None:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}]
    rendered = processors[family].apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == expected


def test_gemma3_chat_template_writes_the_system_text_into_the_first_user_turn(processors) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": " Hi? "}]},
        {"role": "assistant", "content": "Hello."},
    ]
    rendered = processors["gemma3"].apply_chat_template(messages, tokenize=False)
    assert rendered == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi?<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
    )
