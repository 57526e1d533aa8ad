"""Helpers of the prompt-parity tests: LLaMA-Factory's training prompts and lm-eval's encoded prompts of the
same rows (tests/evaluation/test_eval_prompt_format.py, test_prompt_tokenization.py, test_shape_prompt_format.py;
tests/respond/test_respond_prompts.py).

LLaMA-Factory side: its own SFT pipeline (the family's template, image-token expansion, label masking) on
the prepared forget / PD / retain datasets; the prompt is the prefix whose labels are IGNORE_INDEX. lm-eval
side: our tasks' contexts and images, encoded as ``hf-multimodal``'s ``tok_batch_multimodal_encode`` does.
"""

from __future__ import annotations

from pathlib import Path

from llamafactory_safeeraser.lmeval_task.documents import GROUP, TASK_KINDS
from llamafactory_safeeraser.offline.tiny_models import FAMILIES
from llamafactory_safeeraser.tasks import TASK_DIR

# LLaMA-Factory dataset -> (our task, row indices): same order, see data/prepare.py and lmeval_task/documents.py
ROWS = {
    "safeeraser_forget": ("safeeraser_efficacy", [0, 1, 5]),
    "safeeraser_pd": ("safeeraser_sarr", [0, 6]),
    "safeeraser_retain": ("safeeraser_utility", [0, 2, 7]),
}

# LLaMA-Factory keys a family's training needs for the evaluation's prompts: InternVLProcessor tiles images
# (crop_to_patches, its default), LLaMA-Factory only with this key (default off)
TRAINING_KEYS = {"intern_vl": {"crop_to_patches": True}}


def llamafactory_setup(model_dir: Path, family: str, dataset_dir: Path, output_dir: Path, **extra) -> tuple:
    """LLaMA-Factory's parsed arguments, tokenizer module and template for an SFT run of ``family``."""
    from llamafactory_safeeraser.hook.stage import parse_train_args
    from llamafactory_safeeraser.integration import llamafactory as lf

    model_args, data_args, training_args, _, _ = parse_train_args(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "dataset": "safeeraser_forget",
            "dataset_dir": str(dataset_dir),
            "template": FAMILIES[family],
            "cutoff_len": 2048,
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "output_dir": str(output_dir),
            "report_to": "none",
            **TRAINING_KEYS.get(family, {}),
            **extra,
        }
    )
    tokenizer_module = lf.load_tokenizer(model_args)
    template = lf.get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    return model_args, data_args, training_args, tokenizer_module, template


def training_prompts(
    model_dir: Path, family: str, dataset_dir: Path, output_dir: Path, rows: dict[str, list[int]] | None = None
) -> dict[str, list[tuple]]:
    """Per dataset: (prompt token ids, image path) of the selected rows, as LLaMA-Factory encodes them.

    ``rows``: dataset -> row indices (default: those of ROWS)."""
    from llamafactory_safeeraser.integration import llamafactory as lf

    model_args, data_args, training_args, tokenizer_module, template = llamafactory_setup(
        model_dir, family, dataset_dir, output_dir
    )
    rows = rows or {name: indices for name, (_, indices) in ROWS.items()}
    prompts = {}
    for name, indices in rows.items():
        dataset = lf.load_prompt_answer_rows(
            [name],
            template,
            model_args,
            data_args,
            training_args,
            tokenizer_module["tokenizer"],
            tokenizer_module["processor"],
        )
        prompts[name] = [(dataset[index]["prompt_ids"], dataset[index]["images"][0]) for index in indices]
    return prompts


def eval_tasks(family: str, train_file: Path, names: list[str], **metadata) -> dict[str, KindDocuments]:
    """Our lm-eval tasks on ``train_file`` (as train and val file, so that documents follow the prepared rows)."""
    from lm_eval.tasks import TaskManager

    metadata = {"train_file": str(train_file), "val_file": str(train_file), "harmful_samples": 1, **metadata}
    metadata["template"] = FAMILIES[family]
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    return by_kind(manager.load(names)["tasks"])


class KindDocuments:
    """A task kind's category subtasks (e.g. ``safeeraser_efficacy_weapon``), addressed by a document's index in
    the whole kind: file order, which is the order of the prepared LLaMA-Factory rows."""

    def __init__(self, tasks: dict, kind_group: str) -> None:
        located = []
        for name, task in tasks.items():
            if name.startswith(kind_group + "_"):
                located += [(doc["record"], position, task) for position, doc in enumerate(task.eval_docs)]
        if not located:
            raise KeyError(kind_group)
        # a record's documents all sit in its category's subtask, in the record's order
        located.sort(key=lambda entry: entry[:2])
        self.documents = [(task, position) for _, position, task in located]

    def __getitem__(self, index: int) -> tuple:
        return self.documents[index]


def by_kind(tasks: dict) -> dict[str, KindDocuments]:
    """lm-eval's loaded leaf tasks grouped by kind: ``{"safeeraser_efficacy": KindDocuments, ...}``."""
    groups = {f"{GROUP}_{kind}" for kind in TASK_KINDS}
    return {group: KindDocuments(tasks, group) for group in groups if any(name.startswith(group) for name in tasks)}


def task_request(kind: KindDocuments, index: int) -> tuple[str, list, dict]:
    """(context, images, document) of the kind's document ``index``, as lm-eval hands them to the model."""
    task, position = kind[index]
    task.build_all_requests(limit=position + 1, rank=0, world_size=1)
    instance = next(inst for inst in task.instances if inst.doc_id == position)
    context, _, multimodal = instance.args
    return context, multimodal["visual"], instance.doc


def lm_eval_encoding(kind: KindDocuments, lm, index: int) -> tuple[dict, str]:
    """(what hf-multimodal generates from: ids and pixel values, image path) of the task's document ``index``."""
    context, images, doc = task_request(kind, index)
    return lm.tok_batch_multimodal_encode([context], [images]), doc["image_path"]


def lm_eval_prompt(kind: KindDocuments, lm, index: int) -> tuple[list[int], str]:
    """(token ids hf-multimodal generates from, image path) of the task's document ``index``."""
    encoded, image_path = lm_eval_encoding(kind, lm, index)
    return encoded["input_ids"][0].tolist(), image_path
