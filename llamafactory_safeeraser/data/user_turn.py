"""The user turn of every SafeEraser row, in training and in evaluation alike, for every model family."""

from __future__ import annotations

IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's image tag; its template plugin writes the model's own tokens


def user_turn(question: str) -> str:
    """The user turn: the image first, then the question (as LLaVA-1.5 was trained; each family's template
    plugin turns ``<image>`` into that family's image tokens)."""
    return f"{IMAGE_PLACEHOLDER}\n{question}"
