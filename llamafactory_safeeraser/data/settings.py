"""The keys of ``safeeraser prepare`` and ``safeeraser validate``, declared once."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_settings, setting
from .records import SD_IMAGE_QUESTIONS


@dataclass(frozen=True)
class PrepareSettings:
    train: str | None = setting(help="all_train.json (the forget data)", required=True)
    out: str | None = setting(help="output folder; use it as `dataset_dir`", required=True)
    prefix: str = setting("safeeraser", help="dataset name prefix in dataset_info.json")
    refusals: str | None = setting(help="file of refusal answers for PO, one per line")
    pd_question: str = setting(
        "harmful",
        choices=SD_IMAGE_QUESTIONS,
        help="question of the prompt-decouple rows: the harmful one (as the reference) or a record's sd_question",
    )
    capitalize: bool = setting(
        False, help="lower-case questions and answers after their first letter, as the reference's data loader does"
    )
    seed: int = setting(233, help="seed of the refusal answers drawn for the PO rows")
    overwrite: bool = setting(False, help="replace an existing output folder")

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class ValidateSettings:
    files: tuple[str, ...] | None = setting(
        help="SafeEraser files to check (all_train.json, all_val.json)", required=True, positional=True
    )

    def __post_init__(self) -> None:
        check_settings(self)
