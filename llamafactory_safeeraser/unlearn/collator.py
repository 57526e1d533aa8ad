"""The collator that stacks a step's row sets into one padded batch (or keeps them apart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..integration import llamafactory as lf

# Row sets a step can hold, in the order they are stacked: harmful answers, refusals to the same
# prompts (PO, IdkDPO), benign retain answers, and the prompt-decouple rows (benign SD image).
ROW_SETS = ("forget", "refusal", "retain", "pd")


@dataclass
class UnlearningDataCollator(lf.SFTDataCollatorWith4DAttentionMask):
    """Pads all sets of a batch together (rows ordered as in ROW_SETS) for one forward pass.

    Adds ``row_set_sizes`` and ``row_ids``; ``reference_inputs`` holds the sets whose
    reference-model outputs the method needs, collated on their own.
    """

    fused_forward: bool = True
    reference_row_sets: tuple[str, ...] = ()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        collate = super().__call__  # LLaMA-Factory's SFT collation: padding, images, mm inputs
        present = [row_set for row_set in ROW_SETS if row_set in features[0]]

        def collate_row_set(row_set: str) -> dict[str, Any]:
            return collate([dict(feature[row_set]) for feature in features])  # it pops keys: copy

        batch: dict[str, Any] = {
            "row_ids": torch.tensor([feature["row_id"] for feature in features]),
            "row_set_sizes": torch.tensor([len(features) if row_set in present else 0 for row_set in ROW_SETS]),
        }
        if self.fused_forward:
            batch.update(collate([dict(feature[row_set]) for row_set in present for feature in features]))
            batch["reference_inputs"] = {row_set: collate_row_set(row_set) for row_set in self.reference_row_sets}
        else:
            batch["row_set_inputs"] = {row_set: collate_row_set(row_set) for row_set in present}
        return batch
