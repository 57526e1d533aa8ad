"""The user turn of every SafeEraser row, in training and in evaluation alike."""

from __future__ import annotations

IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's image tag; its template plugin writes the model's own tokens


def llava_prompt(question: str) -> str:
    """User turn with the image first, as LLaVA-1.5 was trained."""
    return f"{IMAGE_PLACEHOLDER}\n{question}"
