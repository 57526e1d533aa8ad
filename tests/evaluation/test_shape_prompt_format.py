"""On the released shapes, with real weights: lm-eval's prompts, as ``safeeraser eval`` loads the model and its
tasks, equal LLaMA-Factory's training prompts token for token, all image tokens included (the `shape` tier).

The fast version without weights is test_prompt_tokenization.py; this one goes through ``Evaluator`` (the
per-run task metadata ``tokenizer``, the processor's single BOS) and lm-eval's own ``hf-multimodal`` encoding,
on 336 px images (Qwen2-VL: 144 image tokens).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_parity import ROWS, by_kind, lm_eval_prompt, training_prompts

pytestmark = [pytest.mark.shape, pytest.mark.slow]
# (family, size) -> (image token id, image tokens per 336 px image, the prompt's first token)
SHAPES = {
    ("llava", "shape7b"): (32000, 576, 1),  # <s>: written by the tokenizer, and by the unlearn stage in training
    ("qwen2_vl", "shape7b"): (151655, 144, 151644),  # no BOS: <|im_start|>
    ("mllama", "shape11b"): (128256, 1, 128000),  # <|begin_of_text|>: the template's, the processor's
}


@pytest.fixture(scope="module", params=list(SHAPES), ids=[f"{f}-{s}" for f, s in SHAPES])
def shape(request) -> tuple[str, str]:
    return request.param


@pytest.fixture(scope="module")
def model_dir(shape: tuple[str, str], shape_model_dir) -> Path:
    return shape_model_dir(*shape)


@pytest.fixture(scope="module")
def training(shape, model_dir: Path, shape_data, tmp_path_factory) -> dict:
    return training_prompts(model_dir, shape[0], shape_data[1], tmp_path_factory.mktemp("lf"))


@pytest.fixture(scope="module")
def evaluation(shape, model_dir: Path, shape_data):
    """(tasks, lm) as ``Evaluator.evaluate`` builds them for a run of this model."""
    from llamafactory_safeeraser.evaluation import EvalSettings, Evaluator, RunSpec
    from llamafactory_safeeraser.offline.tiny_models import FAMILIES

    data_file = shape_data[0] / "all_train.json"
    settings = EvalSettings(train_file=data_file, val_file=data_file, harmful_samples=1, template=FAMILIES[shape[0]])
    evaluator = Evaluator(settings)
    run = RunSpec("base", model_dir)
    tasks = by_kind(evaluator.task_manager(run).load([task for task, _ in ROWS.values()])["tasks"])
    return tasks, evaluator.load_model(run)


@pytest.mark.parametrize("dataset", list(ROWS))
def test_lm_eval_prompt_equals_the_training_prompt(dataset: str, shape, training: dict, evaluation) -> None:
    tasks, lm = evaluation
    image_token, per_image, first = SHAPES[shape]
    task_name, indices = ROWS[dataset]
    for position, index in enumerate(indices):
        ours, our_image = lm_eval_prompt(tasks[task_name], lm, index)
        theirs, their_image = training[dataset][position]
        assert ours == theirs, f"{task_name} doc {index}"
        assert our_image == their_image
        assert ours.count(image_token) == per_image
        assert ours[0] == first and ours[1] != first  # one BOS where the model has one, never two
