"""The dataset of `stage: unlearn`: forget / refusal / retain / PD rows side by side, one item per forget row."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TrainerCallback

from ..errors import DataError
from .collator import ROW_SETS
from .rows import assemble_row, fits_cutoff


@dataclass(frozen=True)
class RowSource:
    """A tokenized set (prompt and answer ids, see ``integration.llamafactory.ROW_COLUMNS``) and where it came
    from, for error messages."""

    rows: Any
    dataset: str  # dataset name(s) in dataset_info.json
    files: str  # the file(s) behind them


@dataclass(frozen=True)
class StackSettings:
    cutoff_len: int
    eos_target: bool  # whether the end-of-turn tokens after an answer are targets
    end_of_turn_ids: frozenset[int]  # the template's tokens that end an answer
    seed: int
    retain_sampling: str = "per_epoch"  # a retain row drawn per forget row every epoch, or once
    refusal_sampling: str = "per_epoch"  # PO's refusal drawn per forget row every epoch, or once
    pd_pairing: str = "same_question"  # PD row i with forget row i, or the row at the retain draw's index


def check_rows(source: RowSource, cutoff_len: int) -> None:
    """Fail on the first row that cannot train: not encodable, or a prompt that leaves no room for an answer."""
    for index, (problem, prompt) in enumerate(zip(source.rows["problem"], source.rows["prompt_ids"], strict=True)):
        if problem:
            raise DataError(source.files, f"dataset '{source.dataset}': {problem}", index, "prompt")
        if not fits_cutoff(len(prompt), cutoff_len):
            raise DataError(
                source.files,
                f"dataset '{source.dataset}': the prompt alone is {len(prompt)} tokens (system prompt, question and "
                f"image tokens), cutoff_len is {cutoff_len}; prompts are never cut: raise cutoff_len",
                index,
                "prompt",
            )


class StackedUnlearningDataset(torch.utils.data.Dataset):
    """Item i: forget row i and/or its refusal twin (the same prompt, a refusal answer), PD row i (the same
    question with the benign image; with ``pd_pairing: retain_draw`` the PD row at the retain draw's index)
    and one retain row drawn at random.

    Draws are seeded by (seed, epoch, row): reproducible, equal on every process and after a resume,
    and new every epoch unless the sampling is ``fixed`` (then epoch 0's draw is kept).
    """

    def __init__(
        self,
        forget: RowSource,
        row_sets: tuple[str, ...],
        settings: StackSettings,
        retain: RowSource | None = None,
        pd: RowSource | None = None,
        refusal_answers: tuple[list[int], ...] = (),
    ):
        self.row_sets = tuple(row_set for row_set in ROW_SETS if row_set in row_sets)
        self.settings = settings
        self.forget, self.retain, self.pd = forget, retain, pd
        self.refusal_answers = refusal_answers  # answer ids per refusal text
        self.epoch = 0
        for source in (forget, retain, pd):
            if source is not None:
                check_rows(source, settings.cutoff_len)
        if retain is not None and len(retain.rows) == 0:
            raise DataError(retain.files, f"retain_dataset '{retain.dataset}' has no rows")
        if pd is not None and settings.pd_pairing == "retain_draw":
            assert retain is not None
            if len(retain.rows) > len(pd.rows):  # the reference's loader raises IndexError on such a draw
                raise DataError(
                    pd.files,
                    f"pd_dataset '{pd.dataset}' has {len(pd.rows)} rows but retain_dataset '{retain.dataset}' has "
                    f"{len(retain.rows)}; pd_pairing: retain_draw takes PD row j for retain draw j, so the PD set "
                    "needs at least as many rows",
                )
        elif pd is not None and len(pd.rows) != len(forget.rows):
            raise DataError(
                pd.files,
                f"pd_dataset '{pd.dataset}' has {len(pd.rows)} rows but the forget dataset '{forget.dataset}' has "
                f"{len(forget.rows)}; PD row i must pair with forget row i",
            )
        if "refusal" in self.row_sets and not refusal_answers:
            raise ValueError("refusal rows need at least one refusal answer")

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of every epoch (see :class:`EpochCallback`)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.forget.rows)

    def draw(self, purpose: str, index: int, choices: int, mode: str) -> int:
        epoch = self.epoch if mode == "per_epoch" else 0
        return random.Random(f"{self.settings.seed}:{purpose}:{epoch}:{index}").randrange(choices)

    def retain_index(self, index: int) -> int:
        assert self.retain is not None
        return self.draw("retain", index, len(self.retain.rows), self.settings.retain_sampling)

    def pd_index(self, index: int) -> int:
        """Forget row ``index``'s PD row: the same question's, or the retain draw's index (the reference's loader
        overwrites its index with the retain draw before it reads the PD row)."""
        return self.retain_index(index) if self.settings.pd_pairing == "retain_draw" else index

    def refusal_index(self, index: int) -> int:
        return self.draw("refusal", index, len(self.refusal_answers), self.settings.refusal_sampling)

    def _row(self, source_row: dict[str, Any], answer_ids: list[int]) -> dict[str, Any]:
        settings = self.settings
        row = assemble_row(
            source_row["prompt_ids"], answer_ids, settings.end_of_turn_ids, settings.cutoff_len, settings.eos_target
        )
        row.update(images=source_row["images"], videos=source_row["videos"], audios=source_row["audios"])
        return row

    def own_row(self, source_row: dict[str, Any]) -> dict[str, Any]:
        """A set's row with its own answer."""
        return self._row(source_row, source_row["answer_ids"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"row_id": index}
        prompt_row = self.forget.rows[index]
        if "forget" in self.row_sets:
            item["forget"] = self.own_row(prompt_row)
        if "refusal" in self.row_sets:
            item["refusal"] = self._row(prompt_row, self.refusal_answers[self.refusal_index(index)])
        if "retain" in self.row_sets:
            assert self.retain is not None
            item["retain"] = self.own_row(self.retain.rows[self.retain_index(index)])
        if "pd" in self.row_sets:
            assert self.pd is not None
            item["pd"] = self.own_row(self.pd.rows[self.pd_index(index)])
        return item


class EpochCallback(TrainerCallback):
    """Tells the dataset which epoch starts, before the trainer builds that epoch's data iterator."""

    def __init__(self, dataset: StackedUnlearningDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is exactly an integer at an epoch boundary, and fractional when resuming mid-epoch
        self.dataset.set_epoch(int(state.epoch or 0))
        return control
