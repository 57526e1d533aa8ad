"""Convert SafeEraser files into LLaMA-Factory datasets (alpaca format plus dataset_info.json).

Derived sets, one row per item, in a fixed order:
- forget:          (harmful image, harmful question) -> model_response
- forget_refusal:  the same prompts -> a refusal (PO's target)
- pd:              (benign SD image, the same harmful question) -> sd_response; row i pairs with forget row i
                   (``pd_question="sd_question"``: a record's ``sd_question`` instead, where it has one)
- retain:          (harmful image, UnharmPair question) -> Prediction
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..fileio import output_folder, write_json_atomic
from .records import SafeEraserRecord, read_benchmark
from .refusals import draw_refusals, load_refusals
from .user_turn import user_turn

SPLITS = ("forget", "forget_refusal", "pd", "retain")


def sft_row(image: Path, question: str, answer: str, category: str, record: int) -> dict:
    return {
        "instruction": user_turn(question),
        "output": answer,
        "images": [str(image)],
        "category": category,
        "record": record,
    }


def forget_rows(records: list[SafeEraserRecord]) -> list[dict]:
    return [
        sft_row(r.image_path, p.question, p.model_response, r.category, r.index)
        for r in records
        for p in r.unsafe_pairs
    ]


def pd_rows(records: list[SafeEraserRecord], pd_question: str = "harmful") -> list[dict]:
    return [
        sft_row(r.sd_image_path, p.question_for_sd_image(pd_question), p.sd_response, r.category, r.index)
        for r in records
        for p in r.unsafe_pairs
    ]


def retain_rows(records: list[SafeEraserRecord]) -> list[dict]:
    return [
        sft_row(r.image_path, qa.question, qa.answer, r.category, r.index) for r in records for qa in r.retain_pairs
    ]


def refusal_rows(records: list[SafeEraserRecord], refusals: tuple[str, ...], seed: int) -> list[dict]:
    rows = forget_rows(records)
    for row, refusal in zip(rows, draw_refusals(len(rows), refusals, seed), strict=True):
        row["output"] = refusal
    return rows


def capitalize_row(row: dict) -> dict:
    """The reference data loader's text case: question and answer through ``str.capitalize()`` (every letter
    after the first lower-cased)."""
    question = row["instruction"].removeprefix(user_turn(""))
    return {**row, "instruction": user_turn(question.capitalize()), "output": row["output"].capitalize()}


def dataset_info_entry(file_name: str) -> dict:
    return {
        "file_name": file_name,
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "response": "output", "images": "images"},
    }


@dataclass(frozen=True)
class PreparedDatasets:
    out_dir: Path
    names: dict[str, str]  # split -> dataset name in dataset_info.json
    sizes: dict[str, int]


def prepare_datasets(
    train_file: str | Path,
    out_dir: str | Path,
    prefix: str = "safeeraser",
    refusal_file: str | Path | None = None,
    seed: int = 233,
    overwrite: bool = False,
    pd_question: str = "harmful",
    capitalize: bool = False,
) -> PreparedDatasets:
    """Validate ``train_file`` and write the four derived datasets into ``out_dir`` atomically.

    ``pd_question``: the question of the PD rows, ``harmful`` (the reference) or ``sd_question``;
    ``capitalize``: pass questions and answers through ``str.capitalize()`` as the reference's loader does.
    """
    records = read_benchmark(train_file)
    refusals = load_refusals(refusal_file)
    rows = {
        "forget": forget_rows(records),
        "forget_refusal": refusal_rows(records, refusals, seed),
        "pd": pd_rows(records, pd_question),
        "retain": retain_rows(records),
    }
    if capitalize:
        rows = {split: [capitalize_row(row) for row in split_rows] for split, split_rows in rows.items()}
    names = {split: f"{prefix}_{split}" for split in SPLITS}
    inputs = [train_file, *([refusal_file] if refusal_file else [])]
    inputs += {path.parent for r in records for path in (r.image_path, r.sd_image_path)}  # the images' folders
    with output_folder(out_dir, "prepare", overwrite, inputs, unrecorded_ok=True) as scratch:
        info = {}
        for split in SPLITS:
            write_json_atomic(scratch / f"{split}.json", rows[split])
            info[names[split]] = dataset_info_entry(f"{split}.json")
        write_json_atomic(scratch / "dataset_info.json", info)
    return PreparedDatasets(Path(out_dir), names, {split: len(rows[split]) for split in SPLITS})
