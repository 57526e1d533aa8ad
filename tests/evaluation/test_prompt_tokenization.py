"""Prompt parity with the released tokenizers' behaviour, without weights (the shape models' tokenizers and
processors): LLaVA-1.5's SentencePiece-style Llama tokenizer that adds ``<s>`` and marks word starts, Llama 3's
that adds ``<|begin_of_text|>``, Qwen2's that adds nothing.

The ids lm-eval's processor call produces for our tasks' prompts equal LLaMA-Factory's training prompts
token for token once (1) the prompt is written for the model's tokenizer (metadata ``tokenizer``, set by
``safeeraser eval``) and (2) the runner has switched the tokenizer's own BOS off (hf-multimodal cannot pass
``add_special_tokens=False``). Controls show what each of the two prevents: a prompt joined as written
splits ``...questions.USER:`` differently from training's ``...questions.`` + ``▁USER:``, and a
tokenizer left as released adds a BOS that LLaMA-Factory's ``llava`` template never writes, or for Mllama a
second one after the processor's.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lm_eval.models.utils import replace_placeholders
from prompt_parity import ROWS, eval_tasks, task_request, training_prompts

from llamafactory_safeeraser.evaluation import documents
from llamafactory_safeeraser.evaluation.runner import encode_without_special_tokens

FAMILIES = ("llava", "qwen2_vl", "mllama")
IMAGE_TOKEN_IDS = {"llava": 32000, "qwen2_vl": 151655, "mllama": 128256}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def training(family: str, shape_processor_dir, prepared_dir: Path, tmp_path_factory) -> dict:
    return training_prompts(shape_processor_dir(family), family, prepared_dir, tmp_path_factory.mktemp("lf"))


@functools.cache
def processor_for(model_dir: Path, fixed: bool):
    """The processor hf-multimodal loads; ``fixed``: after the runner's ``encode_without_special_tokens``."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    if fixed:
        encode_without_special_tokens(processor.tokenizer)
    return processor


@functools.cache
def tasks_for(family: str, model_dir: Path, synthetic_dir: Path, tokenizer_metadata: bool) -> dict:
    metadata = {"tokenizer": str(model_dir)} if tokenizer_metadata else {}
    return eval_tasks(family, synthetic_dir / "all_train.json", [task for task, _ in ROWS.values()], **metadata)


def eval_ids(family: str, model_dir: Path, synthetic_dir: Path, task_name: str, index: int, **options) -> list[int]:
    """What hf-multimodal's tok_batch_multimodal_encode produces for the document (its processor call)."""
    task = tasks_for(family, model_dir, synthetic_dir, options.get("tokenizer_metadata", True))[task_name]
    context, images, _ = task_request(task, index)
    processor = processor_for(model_dir, options.get("fixed", True))
    image_token = processor.tokenizer.decode([IMAGE_TOKEN_IDS[family]])
    text = replace_placeholders(context, "<image>", image_token, 1)
    encoded = processor(images=[images[0]], text=[text], return_tensors="pt")
    return encoded["input_ids"][0].tolist()


@pytest.mark.parametrize("dataset", list(ROWS))
def test_prompt_tokens_equal_training_with_the_released_tokenizer(
    dataset: str, family: str, training: dict, shape_processor_dir, synthetic_dir: Path
) -> None:
    model_dir = shape_processor_dir(family)
    task_name, indices = ROWS[dataset]
    for position, index in enumerate(indices):
        theirs, _ = training[dataset][position]
        ours = eval_ids(family, model_dir, synthetic_dir, task_name, index)
        assert ours == theirs, f"{task_name} doc {index}"
    bos = {"llava": None, "qwen2_vl": None, "mllama": 128000}[family]  # LLaMA-Factory's templates: mllama only
    assert theirs.count(128000 if family == "mllama" else 1) == (1 if bos else 0)
    if bos is not None:
        assert theirs[0] == bos


def test_prompt_joined_as_written_differs_only_for_the_sentencepiece_tokenizer(
    training: dict, family: str, shape_processor_dir, synthetic_dir: Path
) -> None:
    """Without metadata ``tokenizer`` the parts are joined as written: right for byte-level BPE (Qwen2,
    Llama 3), wrong for LLaVA-1.5's tokenizer at the system/user boundary."""
    model_dir = shape_processor_dir(family)
    theirs, _ = training["safeeraser_forget"][0]
    joined = eval_ids(family, model_dir, synthetic_dir, "safeeraser_efficacy", 0, tokenizer_metadata=False)
    if family != "llava":
        assert joined == theirs
        return
    assert joined != theirs  # "questions.USER:" in one pass vs "questions." + "▁USER:" part by part
    first = next(i for i, (a, b) in enumerate(zip(joined, theirs, strict=False)) if a != b)
    tokenizer = processor_for(model_dir, True).tokenizer
    assert tokenizer.convert_ids_to_tokens(theirs[first]).startswith("▁USER")  # training's word marker
    assert not tokenizer.convert_ids_to_tokens(joined[first]).startswith("▁")


def test_a_tokenizer_left_as_released_adds_its_bos(
    training: dict, family: str, shape_processor_dir, synthetic_dir: Path
) -> None:
    model_dir = shape_processor_dir(family)
    theirs, _ = training["safeeraser_forget"][0]
    released = eval_ids(family, model_dir, synthetic_dir, "safeeraser_efficacy", 0, fixed=False)
    # mllama: the processor's BOS, then the tokenizer's
    extra = {"llava": [1], "qwen2_vl": [], "mllama": [128000]}[family]
    assert released == extra + theirs


def test_documents_render_the_prompt_for_the_tokenizer_given(shape_processor_dir) -> None:
    plain = documents.render_prompt("llava", "What is shown?")
    for_llava = documents.render_prompt("llava", "What is shown?", str(shape_processor_dir("llava")))
    assert plain.replace("questions.USER:", "questions. USER:") == for_llava


def test_an_unloadable_tokenizer_is_a_one_line_metadata_error(tmp_path: Path) -> None:
    from llamafactory_safeeraser.errors import SafeEraserError

    with pytest.raises(SafeEraserError, match="metadata 'tokenizer': cannot load a tokenizer from"):
        documents.render_prompt("llava", "Q?", str(tmp_path / "missing"))
