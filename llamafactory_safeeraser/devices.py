"""The device a model runs on when the user names none."""

from __future__ import annotations


def default_device(requested: str | None = None) -> str:
    """``requested`` when given; else ``cuda`` when a GPU is available, else ``cpu``."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
