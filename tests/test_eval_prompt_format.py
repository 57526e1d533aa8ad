"""The prompt lm-eval feeds the model is, token for token, the prompt LLaMA-Factory trained on.

LLaMA-Factory side: its own SFT pipeline (template ``llava``, image-token expansion, label
masking) on the prepared forget / PD / retain datasets; the prompt is the prefix whose labels
are IGNORE_INDEX. lm-eval side: our tasks' contexts, encoded by ``hf-multimodal`` exactly as its
``generate_until`` does (``tok_batch_multimodal_encode`` with the document's image).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llamafactory_safeeraser.tasks import TASK_DIR

pytestmark = pytest.mark.slow
ROWS = {  # LLaMA-Factory dataset -> (our task, row indices): same order, see prepare.py and evaluation/data.py
    "safeeraser_forget": ("safeeraser_efficacy", [0, 1, 5]),
    "safeeraser_pd": ("safeeraser_sarr", [0, 6]),
    "safeeraser_retain": ("safeeraser_utility", [0, 2, 7]),
}


@pytest.fixture(scope="module")
def llamafactory_prompts(tiny_model_dir: Path, prepared_dir: Path, tmp_path_factory) -> dict[str, list[tuple]]:
    """Per dataset: (prompt token ids, image path) of the selected rows."""
    from llamafactory_safeeraser import lmf

    model_args, data_args, training_args, _, _ = lmf.parse_train_args(
        {
            "model_name_or_path": str(tiny_model_dir),
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "dataset": "safeeraser_forget",
            "dataset_dir": str(prepared_dir),
            "template": "llava",
            "cutoff_len": 1024,
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "output_dir": str(tmp_path_factory.mktemp("lf")),
            "report_to": "none",
        }
    )
    tokenizer_module = lmf.load_tokenizer(model_args)
    template = lmf.get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    prompts = {}
    for name, (_, indices) in ROWS.items():
        dataset = lmf.load_sft_dataset(
            [name],
            template,
            model_args,
            data_args,
            training_args,
            tokenizer_module["tokenizer"],
            tokenizer_module["processor"],
        )
        prompts[name] = []
        for index in indices:
            row = dataset[index]
            answer_start = next(i for i, label in enumerate(row["labels"]) if label != lmf.IGNORE_INDEX)
            prompts[name].append((row["input_ids"][:answer_start], row["images"][0]))
    return prompts


@pytest.fixture(scope="module")
def lm_eval_side(tiny_model_dir: Path, synthetic_dir: Path):
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    train = str(synthetic_dir / "all_train.json")
    # The prepared datasets come from the train file: point every task at it.
    manager = TaskManager(
        include_path=str(TASK_DIR),
        include_defaults=False,
        metadata={"train_file": train, "val_file": train, "harmful_samples": 1},
    )
    tasks = manager.load([task for task, _ in ROWS.values()])["tasks"]
    lm = get_model("hf-multimodal").create_from_arg_obj(
        {"pretrained": str(tiny_model_dir), "max_images": 1}, {"device": "cpu", "batch_size": 1}
    )
    return tasks, lm


def lm_eval_prompt(task, lm, index: int) -> tuple[list[int], str]:
    """(token ids hf-multimodal generates from, image path) of the task's document ``index``."""
    task.build_all_requests(limit=index + 1, rank=0, world_size=1)
    instance = next(inst for inst in task.instances if inst.doc_id == index)
    context, _, multimodal = instance.args
    encoded = lm.tok_batch_multimodal_encode([context], [multimodal["visual"]])
    return encoded["input_ids"][0].tolist(), instance.doc["image_path"]


@pytest.mark.parametrize("dataset", list(ROWS))
def test_lm_eval_prompt_tokens_equal_llamafactory_training_prompt(
    dataset: str, llamafactory_prompts, lm_eval_side, tiny_model_dir: Path
) -> None:
    from transformers import AutoProcessor

    tasks, lm = lm_eval_side
    task_name, indices = ROWS[dataset]
    image_token_id = AutoProcessor.from_pretrained(tiny_model_dir).tokenizer.convert_tokens_to_ids("<image>")
    for position, index in enumerate(indices):
        ours, our_image = lm_eval_prompt(tasks[task_name], lm, index)
        theirs, their_image = llamafactory_prompts[dataset][position]
        assert ours == theirs, f"{task_name} doc {index}"
        assert our_image == their_image  # token ids cannot tell images apart: compare the files
        assert ours.count(image_token_id) == 16  # the image expanded to its 16 patch tokens on both sides


def test_without_the_template_the_prompts_would_differ(llamafactory_prompts, lm_eval_side) -> None:
    """Control: lm-eval's plain '<image>\\nquestion' context is not what training saw."""
    tasks, lm = lm_eval_side
    task = tasks["safeeraser_efficacy"]
    task.build_all_requests(limit=1, rank=0, world_size=1)
    doc, (_, _, multimodal) = task.instances[0].doc, task.instances[0].args
    bare = lm.tok_batch_multimodal_encode(["<image>\n" + doc["question"]], [multimodal["visual"]])
    assert bare["input_ids"][0].tolist() != llamafactory_prompts["safeeraser_forget"][0][0]
