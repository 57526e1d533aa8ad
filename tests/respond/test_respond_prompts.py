"""``respond`` prompts each model family token for token as LLaMA-Factory trained it: on the tiny models, and with the
released tokenizers' behaviour (the shape models' tokenizers and processors)."""

from __future__ import annotations

import pytest
from prompt_parity import training_prompts

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.respond import RespondSettings
from llamafactory_safeeraser.respond.encoding import PromptEncoder
from llamafactory_safeeraser.respond.items import build_items
from llamafactory_safeeraser.respond.model import ResponseModel

# forget row i is model_response item i; pd row i is sd_response item i (data/prepare.py, respond/items.py)
ROWS = {"safeeraser_forget": "model_response", "safeeraser_pd": "sd_response"}
INDICES = (0, 5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_respond_prompt_tokens_equal_llamafactory_training_prompt(
    family, family_model_dir, synthetic_dir, prepared_dir, tmp_path
):
    model_dir = family_model_dir(family)
    rows = training_prompts(model_dir, family, prepared_dir, tmp_path / "lf", {name: list(INDICES) for name in ROWS})
    theirs = {name: [ids for ids, _ in prompts] for name, prompts in rows.items()}
    settings = RespondSettings(
        model=str(model_dir), input=str(synthetic_dir / "all_train.json"), out=str(tmp_path), template=FAMILIES[family]
    )
    model = ResponseModel(settings)
    items = build_items(read_benchmark(synthetic_dir / "all_train.json"), sd_response=True)
    for name, field in ROWS.items():
        of_field = [item for item in items if item.field == field]
        for position, index in enumerate(INDICES):
            ours = model.encode([of_field[index]])["input_ids"][0].tolist()
            assert ours == theirs[name][position], (family, name, index)
    # batched: left padding only, each prompt's tokens unchanged
    batch = model.encode(items[:3])
    for row, item in zip(batch["input_ids"].tolist(), items[:3], strict=True):
        alone = model.encode([item])["input_ids"][0].tolist()
        assert row[len(row) - len(alone) :] == alone
        assert set(row[: len(row) - len(alone)]) <= {model.tokenizer.pad_token_id}


# ----- with the released tokenizers' behaviour (the shape models' config, tokenizer and processor; no weights) -----
SHAPE_FAMILIES = {"llava": "shape7b", "mllama": "shape11b", "qwen2_vl": "shape7b"}  # as shape_processor_dir builds
SHAPE_BOS = {"llava": 1, "mllama": 128000, "qwen2_vl": None}
SHAPE_IMAGE_TOKENS = {"llava": (32000, 576), "mllama": (128256, 1), "qwen2_vl": (151655, 4)}  # per 24 px image


@pytest.fixture(scope="module", params=list(SHAPE_FAMILIES))
def shape_family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def shape_training(shape_family, shape_processor_dir, prepared_dir, tmp_path_factory) -> dict:
    rows = {name: list(INDICES) for name in ROWS}
    model_dir = shape_processor_dir(shape_family)
    return training_prompts(model_dir, shape_family, prepared_dir, tmp_path_factory.mktemp("lf"), rows)


def shape_encoder(family: str, model_dir, synthetic_dir, tmp_path) -> PromptEncoder:
    settings = RespondSettings(
        model=str(model_dir), input=str(synthetic_dir / "all_train.json"), out=str(tmp_path), template=FAMILIES[family]
    )
    return PromptEncoder(settings)


def test_respond_prompt_tokens_equal_training_with_the_released_tokenizers(
    shape_family, shape_training, shape_processor_dir, synthetic_dir, tmp_path
):
    """The LLaVA-1.5 boundary (``questions.`` + ``▁USER:``), Mllama's single ``<|begin_of_text|>`` and every image
    token, as LLaMA-Factory trains them."""
    encoder = shape_encoder(shape_family, shape_processor_dir(shape_family), synthetic_dir, tmp_path)
    items = build_items(read_benchmark(synthetic_dir / "all_train.json"), sd_response=True)
    image_token, per_image = SHAPE_IMAGE_TOKENS[shape_family]
    bos = SHAPE_BOS[shape_family]
    for name, field in ROWS.items():
        of_field = [item for item in items if item.field == field]
        for position, index in enumerate(INDICES):
            ours = encoder.encode([of_field[index]])["input_ids"][0].tolist()
            theirs = shape_training[name][position][0]
            assert ours == theirs, (shape_family, name, index)
            assert ours.count(image_token) == per_image
            assert (ours[0] == bos) == (bos is not None) and ours[:2] != [bos, bos]


def test_respond_prompts_with_the_evaluations_renderer(shape_family, shape_processor_dir, synthetic_dir, tmp_path):
    """respond's prompt text is the lm-eval documents' (one function), and differs from a prompt joined as the
    template writes it exactly where the released LLaVA-1.5 tokenizer needs it (the system/user boundary)."""
    from llamafactory_safeeraser.data.user_turn import user_turn
    from llamafactory_safeeraser.integration.template_text import render_user_prompt
    from llamafactory_safeeraser.lmeval_task.documents import render_prompt

    model_dir = shape_processor_dir(shape_family)
    encoder = shape_encoder(shape_family, model_dir, synthetic_dir, tmp_path)
    question = "What is shown in the picture?"
    document = render_prompt(FAMILIES[shape_family], question, str(model_dir))
    assert encoder.prompt(question) == document.replace("<image>", encoder.image_token)
    joined = render_user_prompt(FAMILIES[shape_family], user_turn(question))
    assert (joined != document) == (shape_family == "llava")
