"""Forget / retain / PD rows side by side, and the collator that stacks them into one batch."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from .. import lmf
from .trainer import GROUPS


class StackedUnlearningDataset(torch.utils.data.Dataset):
    """Row i holds forget row i (and/or its refusal twin), PD row i (same question, benign image)
    and a sampled retain row."""

    def __init__(self, sets: dict[str, Any], seed: int, names: dict[str, str]):
        self.anchor = "forget" if "forget" in sets else "refusal"  # the set the others pair with
        forget = sets[self.anchor]
        if "pd" in sets and len(sets["pd"]) != len(forget):
            raise ValueError(
                f"pd_dataset '{names['pd']}' has {len(sets['pd'])} usable rows but the forget dataset "
                f"'{names[self.anchor]}' has {len(forget)}; PD row i must pair with forget row i. "
                "LLaMA-Factory drops rows it cannot tokenize (a missing image, a wrong number of <image> tags): "
                "fix those rows in both files."
            )
        self.sets = sets
        self.retain_index: list[int] = []
        if "retain" in sets:
            n_retain = len(sets["retain"])
            if n_retain == 0:
                raise ValueError(f"retain_dataset '{names['retain']}' has no usable rows")
            rng = random.Random(seed)  # one retain row per forget row, at random, as the reference does
            if n_retain >= len(forget):
                self.retain_index = rng.sample(range(n_retain), len(forget))
            else:
                self.retain_index = [rng.randrange(n_retain) for _ in range(len(forget))]

    def __len__(self) -> int:
        return len(self.sets[self.anchor])

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"row_id": index}
        for group, rows in self.sets.items():
            item[group] = rows[self.retain_index[index] if group == "retain" else index]
        return item


@dataclass
class UnlearningDataCollator(lmf.SFTDataCollatorWith4DAttentionMask):
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
