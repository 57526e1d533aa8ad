"""Prompt parity with the released tokenizers' behaviour, without weights (the shape models' tokenizers and
processors): LLaVA-1.5's SentencePiece-style Llama tokenizer that adds ``<s>`` and marks word starts, Llama 3's
that adds ``<|begin_of_text|>``, Qwen2's that adds nothing.

Training rows start with exactly one BOS where the model has one: LLaMA-Factory's ``mllama`` template writes
it, its ``llava`` template does not and the `unlearn` stage adds the tokenizer's ``<s>`` (as LLaVA-1.5 and the
SafeEraser reference train). The ids lm-eval's processor call produces for our tasks' prompts equal those rows
token for token once (1) the prompt is written for the model's tokenizer (metadata ``tokenizer``, set by
``safeeraser eval``) and (2) the runner has made the processor write one BOS (``one_bos_like_training``).
Controls show what each prevents: a prompt joined as written splits ``...questions.USER:`` differently from
training's ``...questions.`` + ``▁USER:``, and Mllama's processor left as released writes ``<|begin_of_text|>``
and its tokenizer a second one.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lm_eval.models.utils import replace_placeholders
from prompt_parity import ROWS, eval_tasks, task_request, training_prompts

from llamafactory_safeeraser.evaluation.processor_bos import one_bos_like_training
from llamafactory_safeeraser.lmeval_task import documents

FAMILIES = ("llava", "qwen2_vl", "mllama")
IMAGE_TOKEN_IDS = {"llava": 32000, "qwen2_vl": 151655, "mllama": 128256}
BOS = {"llava": 1, "qwen2_vl": None, "mllama": 128000}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def training(family: str, shape_processor_dir, prepared_dir: Path, tmp_path_factory) -> dict:
    return training_prompts(shape_processor_dir(family), family, prepared_dir, tmp_path_factory.mktemp("lf"))


@functools.cache
def processor_for(model_dir: Path, fixed: bool):
    """The processor hf-multimodal loads; ``fixed``: after the runner's ``one_bos_like_training``."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    if fixed:
        one_bos_like_training(processor)
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
        bos = BOS[family]
        assert ours[:2] != [bos, bos]  # no doubled BOS
        assert (ours[0] == bos) == (bos is not None)  # and none missing
        assert ours.count(IMAGE_TOKEN_IDS[family]) == {"llava": 576, "qwen2_vl": 4, "mllama": 1}[family]


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


def test_processor_left_as_released_doubles_only_mllamas_bos(
    training: dict, family: str, shape_processor_dir, synthetic_dir: Path
) -> None:
    model_dir = shape_processor_dir(family)
    theirs, _ = training["safeeraser_forget"][0]
    released = eval_ids(family, model_dir, synthetic_dir, "safeeraser_efficacy", 0, fixed=False)
    # MllamaProcessor writes <|begin_of_text|> and Llama 3's tokenizer adds another; LLaVA's <s> is training's
    extra = [128000] if family == "mllama" else []
    assert released == extra + theirs


def test_the_unlearn_stage_adds_bos_only_where_the_tokenizer_writes_one(shape_processor_dir, tiny_model_dir) -> None:
    from transformers import AutoTokenizer

    from llamafactory_safeeraser.integration.template_text import missing_bos

    prompt = [5, 6, 7]
    tokenizers = {name: AutoTokenizer.from_pretrained(shape_processor_dir(name)) for name in FAMILIES}
    assert missing_bos(tokenizers["llava"], prompt) == [1]  # LLaMA-Factory's llava template writes none
    assert missing_bos(tokenizers["llava"], [1, *prompt]) == []
    assert missing_bos(tokenizers["qwen2_vl"], prompt) == []  # no BOS in Qwen2
    assert missing_bos(tokenizers["mllama"], [128000, *prompt]) == []  # the mllama template wrote it
    assert missing_bos(AutoTokenizer.from_pretrained(tiny_model_dir), prompt) == []  # tiny tokenizers add none


def test_documents_render_the_prompt_for_the_tokenizer_given(shape_processor_dir) -> None:
    plain = documents.render_prompt("llava", "What is shown?")
    for_llava = documents.render_prompt("llava", "What is shown?", str(shape_processor_dir("llava")))
    assert plain.replace("questions.USER:", "questions. USER:") == for_llava


def test_an_unloadable_tokenizer_is_a_one_line_metadata_error(tmp_path: Path) -> None:
    from llamafactory_safeeraser.errors import SafeEraserError

    with pytest.raises(SafeEraserError, match="metadata 'tokenizer': cannot load a tokenizer from"):
        documents.render_prompt("llava", "Q?", str(tmp_path / "missing"))


def test_a_prompt_rendered_with_a_released_processor_needs_no_large_image(shape_processor_dir, monkeypatch) -> None:
    """Where the template's plugin reads the processor, a blank stand-in image is rendered for each document:
    never larger than one tile, Gemma 3's 896 px the largest (the Qwen processors' ``size["shortest_edge"]`` is
    a pixel count, 65,536 for Qwen3-VL, not a side)."""
    from PIL import Image

    from llamafactory_safeeraser.integration.template_text import plugin_needs_processor
    from llamafactory_safeeraser.offline.tiny_models import FAMILIES as TEMPLATES
    from llamafactory_safeeraser.offline.tiny_models.sizes import SHAPE_SIZES

    made, new = [], Image.new
    monkeypatch.setattr(Image, "new", lambda mode, size, *rest: made.append(size) or new(mode, size, *rest))
    rendered = []
    for family, shapes in SHAPE_SIZES.items():
        if shapes and plugin_needs_processor(TEMPLATES[family]):
            prompt = documents.render_prompt(TEMPLATES[family], "What is shown?", str(shape_processor_dir(family)))
            assert prompt.count("<image>") + prompt.count("<start_of_image>") == 1, family
            rendered.append(family)
    assert {"qwen3_vl", "intern_vl", "gemma3"} <= set(rendered) and made
    assert max(width * height for width, height in made) <= 896 * 896
