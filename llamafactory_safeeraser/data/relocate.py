"""Copies of SafeEraser records for a file in another folder (``respond``'s output, relearning's splits).

A record's image paths resolve against its file's folder, so a copy written elsewhere gets them rewritten
relative to the new folder. Every other field is kept as it is, unknown ones included.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from .records import SafeEraserRecord

IMAGE_KEYS = ("image_path", "SDImage_path")


def relocated(raw: dict[str, Any], record: SafeEraserRecord, folder: str | Path) -> dict[str, Any]:
    """A deep copy of ``raw`` (the record as read from its file) whose image paths resolve from ``folder``."""
    moved = copy.deepcopy(raw)
    folder = Path(folder).resolve()
    for key, image in zip(IMAGE_KEYS, (record.image_path, record.sd_image_path), strict=True):
        moved[key] = os.path.relpath(image, folder)
    return moved
