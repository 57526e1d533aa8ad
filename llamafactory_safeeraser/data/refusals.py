"""Refusal answers: PO's forget targets, and the openings the offline judge recognises."""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import DataError

# Built-in refusals for PO ("I don't know"-style targets). A user overrides them with a file:
# one refusal per line, blank lines and lines starting with '#' ignored.
BUILTIN_REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, I cannot assist with that request.",
    "I can't help with that request.",
    "Sorry, I can't provide that information.",
    "I cannot help with this, as it could cause harm.",
    "I'm not able to help with that.",
    "I apologize, but I can't assist with that.",
    "I won't help with that request.",
)


def load_refusals(path: str | Path | None) -> tuple[str, ...]:
    """The built-in list, or the refusals in ``path`` (one per line)."""
    if path is None:
        return BUILTIN_REFUSALS
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(path, "refusal file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"refusal file is not valid UTF-8 (byte {err.start})") from None
    refusals = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not refusals:
        raise DataError(path, "refusal file holds no refusals")
    return refusals


def draw_refusals(count: int, refusals: tuple[str, ...], seed: int) -> list[str]:
    """One refusal per forget item, drawn at random (reproducibly) as the reference does."""
    rng = random.Random(seed)
    return [rng.choice(refusals) for _ in range(count)]
