"""``respond`` prompts each model family token for token as LLaMA-Factory trained it (tiny llava, qwen2_vl, mllama)."""

from __future__ import annotations

import pytest
from prompt_parity import training_prompts

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.respond import RespondSettings
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
