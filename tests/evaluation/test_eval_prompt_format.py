"""The prompt lm-eval feeds the model is, token for token, the prompt LLaMA-Factory trained on.

For every model family (tiny llava, qwen2_vl, mllama, gemma3); how each side is encoded: prompt_parity.py. The
released shapes and tokenizers: test_prompt_tokenization.py (fast) and test_shape_prompt_format.py (shape tier).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prompt_parity import (
    ROWS,
    eval_tasks,
    llamafactory_setup,
    lm_eval_encoding,
    lm_eval_prompt,
    task_request,
    training_prompts,
)

pytestmark = pytest.mark.slow
# family -> image tokens a 32 px image puts in the prompt: llava 4x4 patches; qwen2_vl 4x4 patches merged 2x2
# (inside <|vision_start|> ... <|vision_end|>); mllama one <|image|> (the image enters by cross-attention); gemma3
# 4x4 patches pooled 2x2 into soft tokens (Gemma3Processor expands the <start_of_image> the prompt holds);
# llava_next 16 base patches + a 1x2-tile anyres grid unpadded to 4x4 patches and 4 row newlines; intern_vl one
# 32 px tile of 4x4 patches, pixel-shuffled 2x2 (inside <img> ... </img>)
IMAGE_TOKENS = {"llava": 16, "qwen2_vl": 4, "mllama": 1, "gemma3": 4, "llava_next": 36, "intern_vl": 4}


@pytest.fixture(scope="module", params=list(IMAGE_TOKENS))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(family: str, family_model_dir) -> Path:
    return family_model_dir(family)


@pytest.fixture(scope="module")
def llamafactory_prompts(family: str, model_dir: Path, prepared_dir: Path, tmp_path_factory) -> dict[str, list[tuple]]:
    """Per dataset: (prompt token ids, image path) of the selected rows."""
    return training_prompts(model_dir, family, prepared_dir, tmp_path_factory.mktemp("lf"))


@pytest.fixture(scope="module")
def lm_eval_side(family: str, model_dir: Path, synthetic_dir: Path):
    from lm_eval.api.registry import get_model

    # the evaluated model's folder as metadata 'tokenizer', as `safeeraser eval` passes it
    names = [task for task, _ in ROWS.values()]
    tasks = eval_tasks(family, synthetic_dir / "all_train.json", names, tokenizer=str(model_dir))
    lm = get_model("hf-multimodal").create_from_arg_obj(
        {"pretrained": str(model_dir), "max_images": 1}, {"device": "cpu", "batch_size": 1}
    )
    return tasks, lm


@pytest.mark.parametrize("dataset", list(ROWS))
def test_lm_eval_prompt_tokens_equal_llamafactory_training_prompt(
    dataset: str, family: str, llamafactory_prompts, lm_eval_side
) -> None:
    tasks, lm = lm_eval_side
    task_name, indices = ROWS[dataset]
    for position, index in enumerate(indices):
        ours, our_image = lm_eval_prompt(tasks[task_name], lm, index)
        theirs, their_image = llamafactory_prompts[dataset][position]
        assert ours == theirs, f"{task_name} doc {index}"
        assert our_image == their_image  # token ids cannot tell images apart: compare the files
        # the image's tokens, expanded alike on both sides
        assert ours.count(lm.model.config.image_token_id) == IMAGE_TOKENS[family]


def test_without_the_template_the_prompts_would_differ(llamafactory_prompts, lm_eval_side) -> None:
    """Control: lm-eval's plain '<image>\\nquestion' context is not what training saw."""
    tasks, lm = lm_eval_side
    _, images, doc = task_request(tasks["safeeraser_efficacy"], 0)
    try:
        bare = lm.tok_batch_multimodal_encode(["<image>\n" + doc["question"]], [images])
    except ValueError as err:  # Gemma3Processor expands <start_of_image>, not the <image_soft_token> lm-eval writes
        assert "image tokens" in str(err)
        return
    assert bare["input_ids"][0].tolist() != llamafactory_prompts["safeeraser_forget"][0][0]


def test_a_tokenizer_that_adds_bos_itself_adds_exactly_one_token(llamafactory_prompts, lm_eval_side) -> None:
    """hf-multimodal keeps the BOS a tokenizer writes on encode (LLaVA-1.5's and Llama 3's do, the tiny ones do
    not): one leading token, nothing else changes. Hence training rows get the tokenizer's BOS too
    (``integration.template_text.missing_bos``; released tokenizers: test_prompt_tokenization.py)."""
    tasks, lm = lm_eval_side
    tokenizer = lm.tokenizer
    adds_bos = tokenizer.bos_token_id is not None and tokenizer("A")["input_ids"][:1] == [tokenizer.bos_token_id]
    if adds_bos:  # as released (gemma3's): the training prompt already starts with it, from the template's BOS slot
        ours, _ = lm_eval_prompt(tasks["safeeraser_efficacy"], lm, 0)
        assert ours == llamafactory_prompts["safeeraser_forget"][0][0] and ours[1] != tokenizer.bos_token_id
        return
    tokenizer.add_bos_token = True
    try:
        ours, _ = lm_eval_prompt(tasks["safeeraser_efficacy"], lm, 0)
    finally:
        tokenizer.add_bos_token = False
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]  # Qwen tokenizers have no BOS
    assert ours == bos + llamafactory_prompts["safeeraser_forget"][0][0]


# The training run's image_max_pixels: below the 100x60 px images, so LLaMA-Factory shrinks them before the processor.
IMAGE_MAX_PIXELS = 48 * 48


@pytest.fixture(scope="module")
def large_image_data(synthetic_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic benchmark with every image enlarged to 100x60 px, and its LLaMA-Factory datasets."""
    from PIL import Image

    from llamafactory_safeeraser.data.prepare import prepare_datasets

    root = tmp_path_factory.mktemp("large_images")
    shutil.copytree(synthetic_dir, root / "data")
    for path in (root / "data").rglob("*.png"):
        with Image.open(path) as image:
            image.resize((100, 60)).save(path)
    prepare_datasets(root / "data" / "all_train.json", root / "lf")
    return root / "data", root / "lf"


def test_images_are_resized_as_in_training(
    family: str, model_dir: Path, large_image_data: tuple[Path, Path], lm_eval_side, tmp_path: Path
) -> None:
    """Token ids and pixel values match for images LLaMA-Factory resizes (image_max_pixels), given the same limit.

    Without it lm-eval's processor resizes the original itself: Qwen2-VL then gets a different number of image
    tokens (its processor rounds the size differently), LLaVA and Mllama different pixels.
    """
    import torch

    from llamafactory_safeeraser.integration import llamafactory as lf

    data_dir, dataset_dir = large_image_data
    model_args, data_args, training_args, tokenizer_module, template = llamafactory_setup(
        model_dir, family, dataset_dir, tmp_path, image_max_pixels=IMAGE_MAX_PIXELS, max_samples=1
    )
    processor = tokenizer_module["processor"]
    row = lf.load_prompt_answer_rows(
        ["safeeraser_forget"], template, model_args, data_args, training_args, tokenizer_module["tokenizer"], processor
    )[0]
    # what LLaMA-Factory's collator feeds the model for this row's image
    theirs = template.mm_plugin.get_mm_inputs(row["images"], [], [], [1], [0], [0], [row["prompt_ids"]], processor)
    _, lm = lm_eval_side

    def matches(**metadata) -> bool:
        task = eval_tasks(
            family, data_dir / "all_train.json", ["safeeraser_efficacy"], tokenizer=str(model_dir), **metadata
        )
        ours, _ = lm_eval_encoding(task["safeeraser_efficacy"], lm, 0)
        same_ids = ours["input_ids"][0].tolist() == row["prompt_ids"]
        same_pixels = ours["pixel_values"].shape == theirs["pixel_values"].shape and torch.allclose(
            ours["pixel_values"], theirs["pixel_values"], atol=1e-6
        )
        return same_ids and same_pixels

    assert matches(image_max_pixels=IMAGE_MAX_PIXELS)
    assert not matches()  # control: lm-eval assumes LLaMA-Factory's default limit (768x768), training used 48x48
