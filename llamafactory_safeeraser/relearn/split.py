"""Which forget records the attacker relearns on, and which are scored: whole records, seeded, no shared image.

A record is one harmful image with its questions, so splitting by record keeps every image on one side.
Records that share an image (a harmful or an SD image used twice) are kept together as one group; groups
are shuffled with the seed and taken until the relearning share is reached.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.records import SafeEraserRecord
from ..errors import SafeEraserError


@dataclass(frozen=True)
class Split:
    relearn: tuple[int, ...]  # record indices the attacker trains on
    scored: tuple[int, ...]  # the rest, scored after relearning


def image_groups(records: Sequence[SafeEraserRecord]) -> list[list[int]]:
    """Record indices grouped so that no image is used by two groups (in order of first record)."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[object, int] = {}
    for position, record in enumerate(records):
        for image in (record.image_path, record.sd_image_path):
            if image in owner:
                parent[root(position)] = root(owner[image])
            else:
                owner[image] = position
    groups: dict[int, list[int]] = {}
    for position in range(len(records)):
        groups.setdefault(root(position), []).append(position)
    return [[records[p].index for p in group] for group in sorted(groups.values(), key=lambda g: g[0])]


def split_records(records: Sequence[SafeEraserRecord], share: float, seed: int) -> Split:
    """About ``share`` of the records (at least one group; never all) to relearn on, the rest to score."""
    groups = image_groups(records)
    if len(groups) < 2:
        raise SafeEraserError(
            f"relearning needs at least two records with distinct images to split the forget set, got {len(groups)}"
        )
    random.Random(seed).shuffle(groups)
    target = share * len(records)
    relearn: list[int] = []
    for group in groups[:-1]:  # the last group always stays scored
        if relearn and len(relearn) + len(group) / 2 > target:
            break
        relearn += group
    held = set(relearn)
    return Split(tuple(sorted(held)), tuple(sorted(r.index for r in records if r.index not in held)))
