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

SHAPES = [("llava", "shape7b"), ("llava", "shape13b"), ("qwen2_vl", "shape7b"), ("mllama", "shape11b")]
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
}
# the model pages' parameter counts, to their published precision (billions)
PUBLISHED_PARAMETERS = {
    ("llava", "shape7b"): 7.06,
    ("llava", "shape13b"): 13.4,
    ("qwen2_vl", "shape7b"): 8.29,
    ("mllama", "shape11b"): 10.7,
}
# config fields that follow the layer counts (everything else must equal the released model's)
LAYER_FIELDS = {
    "num_hidden_layers",
    "depth",
    "num_global_layers",
    "cross_attention_layers",
    "intermediate_layers_indices",
    "layer_types",
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
    else:  # LLaVA-1.5's Llama tokenizer and Llama 3's add their BOS on encode
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


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("llava", "USER: <image>\nHi? ASSISTANT:"),
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
