"""What ``respond`` answers: one item per (record, harmful question, answer field), in file order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.records import SafeEraserRecord

MODEL_RESPONSE = "model_response"  # harmful image + harmful question
SD_RESPONSE = "sd_response"  # benign SD image + the same question (or sd_question)


@dataclass(frozen=True)
class Item:
    record: int  # the record's index in the file
    pair: int  # its index in unsafe_pairs
    field: str  # MODEL_RESPONSE or SD_RESPONSE
    question: str
    image: Path

    @property
    def key(self) -> str:
        return f"{self.record}:{self.pair}:{self.field}"


def build_items(records: Sequence[SafeEraserRecord], sd_response: bool, sd_question: str = "harmful") -> list[Item]:
    """Per record and harmful question: its model_response item, then (``sd_response``) its sd_response item."""
    items = []
    for record in records:
        for j, pair in enumerate(record.unsafe_pairs):
            items.append(Item(record.index, j, MODEL_RESPONSE, pair.question, record.image_path))
            if sd_response:
                question = pair.question_for_sd_image(sd_question)
                items.append(Item(record.index, j, SD_RESPONSE, question, record.sd_image_path))
    return items


def batches(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Fixed batches by position: batch k is always the same items, so a resumed run samples as the first did."""
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
