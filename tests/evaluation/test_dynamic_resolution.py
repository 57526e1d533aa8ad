"""Families whose image-token count follows the image size: a batch of rows with images of several sizes keeps all
of each row's image tokens, and training, lm-eval and respond give each image the same number of them.

One training batch (the `unlearn` stage's collator over four forget rows), one lm-eval batch (hf-multimodal's
encoding of the four matching documents) and one respond batch, each row's image a different size.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import build_unlearning_trainer
from prompt_parity import TRAINING_KEYS, eval_tasks, task_request

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.respond import RespondSettings
from llamafactory_safeeraser.respond.items import build_items
from llamafactory_safeeraser.respond.model import ResponseModel

pytestmark = pytest.mark.slow
# (width, height) of the first four records' images (each record's first forget row: rows 0, 4, 8, 12)
SIZES = ((32, 32), (64, 32), (32, 96), (48, 48))
ROWS = (0, 4, 8, 12)
# image tokens per image size, worked out by hand:
# qwen2_vl: (H/16) x (W/16) merged patches (8 px patches, merged 2x2): 2x2, 2x4, 6x2, 3x3
# llava_next: 16 base patches + the anyres grid's patches unpadded to the image's aspect + one newline per row:
#   16 + (4x4 + 4), 16 + (4x8 + 4) (grid 1x2 tiles), 16 + (12x4 + 12) (3x1), 16 + (8x8 + 8) (2x2)
# intern_vl: 4 per 32 px tile; tiles: 1, 2 + thumbnail, 3 + thumbnail, 2x2 + thumbnail
IMAGE_TOKENS = {
    "qwen2_vl": (4, 8, 12, 9),
    "llava_next": (36, 52, 76, 88),
    "intern_vl": (4, 12, 16, 20),
}


@pytest.fixture(scope="module", params=list(IMAGE_TOKENS))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(family: str, family_model_dir) -> Path:
    return family_model_dir(family)


@pytest.fixture(scope="module")
def sized_data(synthetic_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic benchmark with the first four records' images at SIZES, and a forget set of those four
    records' first rows (one training batch)."""
    from PIL import Image

    from llamafactory_safeeraser.data.prepare import prepare_datasets

    root = tmp_path_factory.mktemp("sized_images")
    shutil.copytree(synthetic_dir, root / "data")
    records = read_benchmark(root / "data" / "all_train.json")
    for record, size in zip(records, SIZES, strict=False):
        path = record.image_path  # absolute
        with Image.open(path) as image:
            image.resize(size, Image.Resampling.NEAREST).save(path)
    prepare_datasets(root / "data" / "all_train.json", root / "lf")
    forget = root / "lf" / "forget.json"
    rows = json.loads(forget.read_text())
    forget.write_text(json.dumps([rows[index] for index in ROWS]))
    return root / "data", root / "lf"


def image_token_counts(input_ids: torch.Tensor, image_token_id: int) -> list[int]:
    return (input_ids == image_token_id).sum(dim=1).tolist()


def without_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]


@pytest.fixture(scope="module")
def training_batch(family: str, model_dir: Path, sized_data: tuple[Path, Path], tmp_path_factory) -> tuple:
    """(the stage's first batch of the four rows, the trainer's model)."""
    _, dataset_dir = sized_data
    trainer = build_unlearning_trainer(
        model_dir,
        dataset_dir,
        tmp_path_factory.mktemp("trainer"),
        template=FAMILIES[family],
        unlearn_method="ga",
        per_device_train_batch_size=len(ROWS),
        cutoff_len=512,
        **TRAINING_KEYS.get(family, {}),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    return batch, trainer.model


def test_a_training_batch_keeps_every_image_token_of_every_size(family: str, training_batch) -> None:
    batch, model = training_batch
    image_token_id = model.config.image_token_id
    assert sorted(batch["row_ids"].tolist()) == list(range(len(ROWS)))  # one batch of the four rows
    expected = [IMAGE_TOKENS[family][row] for row in batch["row_ids"].tolist()]
    assert image_token_counts(batch["input_ids"], image_token_id) == expected
    # the model takes the batch: each row's image features fill exactly its image tokens
    inputs = {key: value for key, value in batch.items() if key not in ("row_ids", "row_set_sizes", "labels")}
    inputs.pop("reference_inputs", None)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == batch["input_ids"].shape


def test_lm_eval_and_respond_batches_match_training_per_image_size(
    family: str, model_dir: Path, sized_data: tuple[Path, Path], training_batch, tmp_path: Path
) -> None:
    from lm_eval.api.registry import get_model

    data_dir, _ = sized_data
    batch, model = training_batch
    image_token_id = model.config.image_token_id
    theirs = without_padding(batch["input_ids"], batch["attention_mask"])
    # each row's prompt: the positions before its first target (right-padded rows), in row order
    answer_starts = [next(t for t, label in enumerate(row) if label != -100) for row in batch["labels"].tolist()]
    by_row = dict(zip(batch["row_ids"].tolist(), zip(theirs, answer_starts, strict=True), strict=True))
    training_prompts = [by_row[row][0][: by_row[row][1]] for row in range(len(ROWS))]

    # the evaluated model's folder as metadata 'tokenizer', as `safeeraser eval` passes it
    tasks = eval_tasks(family, data_dir / "all_train.json", ["safeeraser_efficacy"], tokenizer=str(model_dir))
    kind = tasks["safeeraser_efficacy"]
    lm = get_model("hf-multimodal").create_from_arg_obj(
        {"pretrained": str(model_dir), "max_images": 1}, {"device": "cpu", "batch_size": len(ROWS)}
    )
    requests = [task_request(kind, index) for index in ROWS]
    encoded = lm.tok_batch_multimodal_encode([context for context, _, _ in requests], [im for _, im, _ in requests])
    assert image_token_counts(encoded["input_ids"], image_token_id) == list(IMAGE_TOKENS[family])
    assert without_padding(encoded["input_ids"], encoded["attention_mask"]) == training_prompts

    settings = RespondSettings(
        model=str(model_dir), input=str(data_dir / "all_train.json"), out=str(tmp_path), template=FAMILIES[family]
    )
    items = [
        item
        for item in build_items(read_benchmark(data_dir / "all_train.json"), sd_response=False)
        if item.field == "model_response"
    ]
    respond = ResponseModel(settings).encode([items[index] for index in ROWS])
    assert image_token_counts(respond["input_ids"], image_token_id) == list(IMAGE_TOKENS[family])
    assert without_padding(respond["input_ids"], respond["attention_mask"]) == training_prompts
