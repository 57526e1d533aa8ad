"""The collator that stacks a step's row sets into one padded batch (or keeps them apart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..integration import llamafactory as lf

# Row sets a step can hold, in the order they are stacked: harmful answers, refusals to the same
# prompts (PO, IdkDPO), benign retain answers, and the prompt-decouple rows (benign SD image).
GROUPS = ("forget", "refusal", "retain", "pd")


@dataclass
class UnlearningDataCollator(lf.SFTDataCollatorWith4DAttentionMask):
    """Pads all sets of a batch together (rows ordered as in GROUPS) for one forward pass.

    Adds ``group_sizes`` and ``row_ids``; ``reference_inputs`` holds the sets whose
    reference-model outputs the method needs, collated on their own.
    """

    fused_forward: bool = True
    reference_groups: tuple[str, ...] = ()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        collate = super().__call__  # LLaMA-Factory's SFT collation: padding, images, mm inputs
        present = [group for group in GROUPS if group in features[0]]

        def collate_group(group: str) -> dict[str, Any]:
            return collate([dict(feature[group]) for feature in features])  # it pops keys: copy

        batch: dict[str, Any] = {
            "row_ids": torch.tensor([feature["row_id"] for feature in features]),
            "group_sizes": torch.tensor([len(features) if group in present else 0 for group in GROUPS]),
        }
        if self.fused_forward:
            batch.update(collate([dict(feature[group]) for group in present for feature in features]))
            batch["reference_inputs"] = {group: collate_group(group) for group in self.reference_groups}
        else:
            batch["group_inputs"] = {group: collate_group(group) for group in present}
        return batch
