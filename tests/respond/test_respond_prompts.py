"""``respond`` prompts each model family token for token as LLaMA-Factory trained it (tiny llava, qwen2_vl, mllama)."""

from __future__ import annotations

import pytest

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.hook.stage import parse_train_args
from llamafactory_safeeraser.integration import llamafactory as lf
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.respond import RespondSettings
from llamafactory_safeeraser.respond.items import build_items
from llamafactory_safeeraser.respond.model import ResponseModel

# forget row i is model_response item i; pd row i is sd_response item i (data/prepare.py, respond/items.py)
ROWS = {"safeeraser_forget": "model_response", "safeeraser_pd": "sd_response"}
INDICES = (0, 5)


def llamafactory_prompt_ids(model_dir, family, dataset_dir, output_dir) -> dict[str, list[list[int]]]:
    model_args, data_args, training_args, _, _ = parse_train_args(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "dataset": "safeeraser_forget",
            "dataset_dir": str(dataset_dir),
            "template": FAMILIES[family],
            "cutoff_len": 1024,
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "output_dir": str(output_dir),
            "report_to": "none",
        }
    )
    tokenizer_module = lf.load_tokenizer(model_args)
    template = lf.get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    ids = {}
    for name in ROWS:
        rows = lf.load_prompt_answer_rows(
            [name],
            template,
            model_args,
            data_args,
            training_args,
            tokenizer_module["tokenizer"],
            tokenizer_module["processor"],
        )
        ids[name] = [rows[i]["prompt_ids"] for i in INDICES]
    return ids


@pytest.mark.parametrize("family", list(FAMILIES))
def test_respond_prompt_tokens_equal_llamafactory_training_prompt(
    family, family_model_dir, synthetic_dir, prepared_dir, tmp_path
):
    model_dir = family_model_dir(family)
    theirs = llamafactory_prompt_ids(model_dir, family, prepared_dir, tmp_path / "lf")
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
