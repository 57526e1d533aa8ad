"""Every paper recipe on its released model's shape: `llamafactory-cli train` for two steps, then the
`safeeraser` lm-eval row_set with a document limit on the adapter it saved (the `shape` tier).

A recipe runs with all its own keys except the ones ``offline.cpu_recipe`` replaces and says why: the
model (the shape model, fewest layers), the folders, the layers (RMU's ``rmu_layer``), the steps, and what
needs GPUs (``deepspeed``; ``bf16`` stays, with ``use_cpu``). The models are the released shapes
(4096-wide Llama with a 32,064-row vocabulary and 576 image tokens; Qwen2-VL's 152,064 rows and M-RoPE;
Mllama's cross-attention layers and 560 px tiles; Qwen2.5-VL's window attention, Qwen3-VL's DeepStack,
Gemma 3's 262,208 rows and sliding window, InternVL's pixel shuffle, LLaVA-NeXT's tiled views), so cutoffs,
image-token counts, the BOS and bf16 run as on a GPU. About 45 minutes on 2 CPU cores for the LLaVA,
Qwen2-VL and Llama-3.2 recipes; the newer families add ten recipes (NPO+PD and PO+PD each), 1.6-3.3 minutes
each (docs/performance.md, "The shape tier").

The row checks before (fast tier) need no weights: every training row of a recipe holds all its image
tokens and exactly one BOS where the model has one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import REPO, build_unlearning_dataset, llamafactory_train, log_history

import yaml
from llamafactory_safeeraser.data.records import CATEGORIES
from llamafactory_safeeraser.offline.cpu_recipe import cpu_recipe, shape_of
from llamafactory_safeeraser.offline.tiny_models import FAMILIES

# the newer families' recipes (Qwen2.5-VL, Qwen3-VL, Gemma 3, InternVL 3, LLaVA-NeXT)
NEWER = ("qwen25vl_7b", "qwen3vl_8b", "gemma3_12b", "internvl3_8b", "llavanext_7b")
RECIPES = [
    *sorted((REPO / "yaml").glob("llava7b_*.yaml")),
    *sorted((REPO / "yaml").glob("llava13b_*.yaml")),
    REPO / "yaml/qwen2vl_7b_npo_pd.yaml",
    REPO / "yaml/llama32v_11b_npo_pd.yaml",
    *(REPO / f"yaml/{prefix}_{method}.yaml" for prefix in NEWER for method in ("npo_pd", "po_pd")),
]
# family -> (image token id, image tokens per 336 px image)
IMAGE_TOKENS = {
    "llava": (32000, 576),
    "qwen2_vl": (151655, 144),
    "mllama": (128256, 1),
    "qwen2_5_vl": (151655, 144),  # 24 x 24 patches of 14 px, merged 2 x 2
    "qwen3_vl": (151655, 100),  # 336 px rounded to 320: 20 x 20 patches of 16 px, merged 2 x 2
    "gemma3": (262144, 256),
    "intern_vl": (151667, 256),  # one tile
    "llava_next": (32000, 1176),  # 576 base view + the 336 x 672 grid unpadded to 24 x 24, + 24 row newlines
}
# family -> a row's first token: the BOS (llava, llava_next: the tokenizer's <s>; mllama, gemma3: the
# template's), or <|im_start|> (the Qwen2 tokenizers of the Qwen families and InternVL have no BOS)
FIRST_TOKEN = {
    "llava": 1,
    "qwen2_vl": 151644,
    "mllama": 128000,
    "qwen2_5_vl": 151644,
    "qwen3_vl": 151644,
    "gemma3": 2,
    "intern_vl": 151644,
    "llava_next": 1,
}


def shape_recipe_config(recipe: Path, model_dir: Path, dataset_dir: Path, text_layers: int) -> dict:
    return cpu_recipe(yaml.safe_load(recipe.read_text()), model_dir, dataset_dir, text_layers)


# ----- every training row (fast: no weights) ---------------------------------------------------------
ROW_RECIPES = [
    REPO / f"yaml/{name}.yaml"
    for name in ("llava7b_gd_pd", "qwen2vl_7b_npo_pd", "llama32v_11b_npo_pd", *(f"{p}_npo_pd" for p in NEWER))
]


@pytest.mark.parametrize("recipe", ROW_RECIPES, ids=[r.stem for r in ROW_RECIPES])
def test_every_training_row_holds_all_image_tokens_and_one_bos(
    recipe: Path, shape_processor_dir, shape_data, tmp_path: Path
) -> None:
    family, _ = shape_of(recipe)
    config = shape_recipe_config(recipe, shape_processor_dir(family), shape_data[1], text_layers=1)
    config["output_dir"] = str(tmp_path)
    dataset, _ = build_unlearning_dataset(config)
    image_token, per_image = IMAGE_TOKENS[family]
    first = FIRST_TOKEN[family]
    row_sets = set()
    for index in range(len(dataset)):
        for row_set, row in dataset[index].items():
            if row_set == "row_id":
                continue
            row_sets.add(row_set)
            ids = list(row["input_ids"])
            assert ids.count(image_token) == per_image, (row_set, index)
            assert len(ids) <= config["cutoff_len"]
            assert ids[0] == first and ids[1] != first, (row_set, index)  # one BOS (none for Qwen2), not two
    assert row_sets == ({"forget", "retain", "pd"} if "gd" in recipe.stem else {"forget", "pd"})


# ----- training and evaluation (the shape tier) ------------------------------------------------------
@pytest.mark.shape
@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_trains_two_steps_on_its_shape_model_and_evaluates(
    recipe: Path, shape_model_dir, shape_data, tmp_path: Path
) -> None:
    from llamafactory_safeeraser.evaluation import EvalSettings, RunSpec, evaluate_runs
    from llamafactory_safeeraser.lmeval_task.documents import render_prompt

    family, size = shape_of(recipe)
    model_dir = shape_model_dir(family, size)
    text_layers = json.loads((model_dir / "config.json").read_text())["text_config"]["num_hidden_layers"]
    config = shape_recipe_config(recipe, model_dir, shape_data[1], text_layers)
    config["output_dir"] = str(tmp_path / recipe.stem)
    out = llamafactory_train(config, tmp_path, recipe.stem, timeout=3600)

    steps = [entry for entry in log_history(out) if "loss" in entry]
    assert len(steps) == 2 and all(math.isfinite(entry["loss"]) for entry in steps)
    assert all(("pd_nll" in entry) == ("pd_dataset" in config) for entry in steps)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (config["lora_rank"], config["lora_alpha"])
    expected_saved = [config["additional_target"]] if "additional_target" in config else None
    assert adapter["modules_to_save"] == expected_saved

    settings = EvalSettings(
        data_dir=shape_data[0],
        harmful_samples=1,
        max_gen_toks=4,
        limit=1,
        template=config["template"],
        image_max_pixels=config.get("image_max_pixels"),
        seed=11,
        device="cpu",
    )
    evaluate_runs([RunSpec(recipe.stem, model_dir, out)], settings, tmp_path / "eval", report=False)
    results = json.loads((tmp_path / "eval" / recipe.stem / "results.json").read_text())
    kinds = ("efficacy", "generality", "sarr", "utility")
    # lm-eval's limit is per subtask: one document per kind and category
    assert {kind: results["tasks"][kind]["n"] for kind in kinds} == dict.fromkeys(kinds, len(CATEGORIES))
    lines = (tmp_path / "eval" / recipe.stem / "samples.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    assert len(samples) == len(kinds) * len(CATEGORIES)
    for sample in samples:  # written for the model's tokenizer (integration.template_text.text_encoding_like_template)
        assert sample["prompt"] == render_prompt(FAMILIES[family], sample["question"], str(model_dir))
