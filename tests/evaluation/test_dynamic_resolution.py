"""Dynamic resolution (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): a batch whose images have several sizes keeps every image
token of every row, in the `unlearn` stage's training batch, in lm-eval's batch and in respond's, and the three
agree row by row (ids, image grid, pixels).

A row's image tokens: ``image_grid_thw.prod() / merge_size**2`` (the grid in 8 px patches of the tiny models).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import build_unlearning_trainer
from PIL import Image
from prompt_parity import eval_tasks, task_request

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.respond import RespondSettings
from llamafactory_safeeraser.respond.encoding import PromptEncoder
from llamafactory_safeeraser.respond.items import MODEL_RESPONSE, build_items
from llamafactory_safeeraser.unlearn.rows import IGNORE_INDEX

pytestmark = pytest.mark.slow
DYNAMIC_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
# (width, height) of record i's image, i mod 4: 4x4, 6x4, 8x8 and 4x8 patches of 8 px; 4, 6, 16 and 8 image tokens
SIZES = ((32, 32), (48, 32), (64, 64), (32, 64))
ROWS = len(SIZES)  # the batch: the first forget row of each of the first four records


@pytest.fixture(scope="module", params=DYNAMIC_FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def mixed_size_data(synthetic_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic benchmark with one question per record and images of SIZES in turn; its LLaMA-Factory datasets.

    One question per record: forget row i, efficacy document i and respond item i are record i's."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets

    root = tmp_path_factory.mktemp("mixed_sizes")
    shutil.copytree(synthetic_dir, root / "data")
    train_file = root / "data" / "all_train.json"
    records = json.loads(train_file.read_text())
    for record in records:
        record["unsafe_pairs"] = record["unsafe_pairs"][:1]
    train_file.write_text(json.dumps(records))
    for index, path in enumerate(sorted((root / "data").rglob("*.png"))):
        with Image.open(path) as image:
            image.resize(SIZES[index % len(SIZES)]).save(path)
    prepare_datasets(train_file, root / "lf")
    return root / "data", root / "lf"


@pytest.fixture(scope="module")
def model_dir(family: str, family_model_dir) -> Path:
    return family_model_dir(family)


def unpadded_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]


@pytest.fixture(scope="module")
def training_batch(family: str, model_dir: Path, mixed_size_data, tmp_path_factory) -> dict:
    """The first batch of a `stage: unlearn` run (GA + PD): 4 forget rows, then their 4 PD rows, padded together."""
    _, dataset_dir = mixed_size_data
    trainer = build_unlearning_trainer(
        model_dir,
        dataset_dir,
        tmp_path_factory.mktemp("train"),
        template=FAMILIES[family],
        unlearn_method="ga",
        pd_dataset="safeeraser_pd",
        max_samples=ROWS,
        per_device_train_batch_size=ROWS,
        disable_shuffling=True,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    rows = unpadded_rows(batch["input_ids"], batch["attention_mask"])
    labels = [label[mask.bool()].tolist() for label, mask in zip(batch["labels"], batch["attention_mask"], strict=True)]
    # each row's prompt: the tokens before its first trained label
    prompts = [
        row[: next(i for i, label in enumerate(row_labels) if label != IGNORE_INDEX)]
        for row, row_labels in zip(rows, labels, strict=True)
    ]
    images = [row["forget"]["images"][0] for row in (trainer.train_dataset[i] for i in range(ROWS))]
    return {"batch": batch, "prompts": prompts, "forget_images": images, "config": trainer.model.config}


def image_token_counts(rows: list[list[int]], image_token_id: int) -> list[int]:
    return [row.count(image_token_id) for row in rows]


def expected_counts(grid_thw: torch.Tensor, merge_size: int) -> list[int]:
    return (grid_thw.prod(-1) // merge_size**2).tolist()


def test_training_batch_keeps_every_image_token_of_every_size(training_batch) -> None:
    batch, config = training_batch["batch"], training_batch["config"]
    grid = batch["image_grid_thw"]
    assert grid.shape == (2 * ROWS, 3)  # one image per row: forget rows, then PD rows
    rows = unpadded_rows(batch["input_ids"], batch["attention_mask"])
    assert image_token_counts(rows, config.image_token_id) == expected_counts(
        grid, config.vision_config.spatial_merge_size
    )
    assert batch["pixel_values"].shape[0] == int(grid.prod(-1).sum())  # every patch of every image
    # the forget rows' images kept their sizes: 4, 6, 16 and 8 image tokens
    for path, (t, h, w) in zip(training_batch["forget_images"], grid[:ROWS].tolist(), strict=True):
        with Image.open(path) as image:
            assert (t, h * 8, w * 8) == (1, image.height, image.width)
    assert image_token_counts(rows[:ROWS], config.image_token_id) == [4, 6, 16, 8]


def per_image_pixels(pixel_values: torch.Tensor, grid: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(pixel_values, grid.prod(-1).tolist()))


def assert_same_as_training(encoding, training_batch, image_token_id: int) -> None:
    """An evaluation batch (left-padded) against the training batch's forget rows: ids, image grids, pixels."""
    batch = training_batch["batch"]
    rows = unpadded_rows(encoding["input_ids"], encoding["attention_mask"])
    assert rows == training_batch["prompts"][:ROWS]
    assert image_token_counts(rows, image_token_id) == [4, 6, 16, 8]
    assert encoding["image_grid_thw"].tolist() == batch["image_grid_thw"][:ROWS].tolist()
    theirs = per_image_pixels(batch["pixel_values"], batch["image_grid_thw"])[:ROWS]
    ours = per_image_pixels(encoding["pixel_values"], encoding["image_grid_thw"])
    for mine, training in zip(ours, theirs, strict=True):
        assert torch.allclose(mine.float(), training.float(), atol=1e-6)


def test_lm_eval_batch_of_several_sizes_equals_training(family: str, model_dir: Path, mixed_size_data, training_batch):
    from lm_eval.api.registry import get_model

    data_dir, _ = mixed_size_data
    # the evaluated model's folder as metadata 'tokenizer', as `safeeraser eval` passes it
    tasks = eval_tasks(family, data_dir / "all_train.json", ["safeeraser_efficacy"], tokenizer=str(model_dir))
    requests = [task_request(tasks["safeeraser_efficacy"], index) for index in range(ROWS)]
    assert [doc["image_path"] for _, _, doc in requests] == [str(path) for path in training_batch["forget_images"]]
    lm = get_model("hf-multimodal").create_from_arg_obj(
        {"pretrained": str(model_dir), "max_images": 1}, {"device": "cpu", "batch_size": ROWS}
    )
    encoding = lm.tok_batch_multimodal_encode(
        [context for context, _, _ in requests], [images for _, images, _ in requests]
    )
    assert_same_as_training(encoding, training_batch, lm.model.config.image_token_id)


def test_respond_batch_of_several_sizes_equals_training(
    family: str, model_dir: Path, mixed_size_data, training_batch, tmp_path
):
    data_dir, _ = mixed_size_data
    train_file = data_dir / "all_train.json"
    settings = RespondSettings(
        model=str(model_dir), input=str(train_file), out=str(tmp_path), template=FAMILIES[family]
    )
    items = [item for item in build_items(read_benchmark(train_file), sd_response=True) if item.field == MODEL_RESPONSE]
    encoder = PromptEncoder(settings)
    encoding = encoder.encode(items[:ROWS])
    assert_same_as_training(encoding, training_batch, encoder.config.image_token_id)
