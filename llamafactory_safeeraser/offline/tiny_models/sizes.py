"""Model sizes and which family is built in which size (standard library only: the CLI reads it at start)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SafeEraserError


@dataclass(frozen=True)
class TinySize:
    text_hidden: int
    text_layers: int
    text_intermediate: int
    text_heads: int
    vision_hidden: int
    vision_layers: int
    vocab_size: int
    image_size: int = 32
    patch_size: int = 8


SIZES = {
    # ~0.4M parameters: unit and integration tests.
    "tiny": TinySize(64, 2, 128, 4, 32, 2, 2048),
    # ~1.3M parameters: the CPU demo (big enough to learn the synthetic benchmark in minutes).
    "demo": TinySize(128, 2, 256, 4, 64, 2, 2048),
    # >=10M parameters: benchmarks, where compute must dominate Python overhead.
    "small": TinySize(320, 6, 1280, 5, 128, 4, 2048),
}


# Sizes each family is built in: the new families only for tests, LLaVA also for the demo and benchmarks.
FAMILY_SIZES = {"llava": tuple(SIZES), "qwen2_vl": ("tiny",), "mllama": ("tiny",)}


class ModelSpecError(SafeEraserError, ValueError):
    """An unknown family, or a size that family is not built in."""


def tiny_size(size: str, family: str) -> TinySize:
    if family not in FAMILY_SIZES:
        raise ModelSpecError(f"unknown model family '{family}'; choose one of {', '.join(FAMILY_SIZES)}")
    allowed = FAMILY_SIZES[family]
    if size not in allowed:
        raise ModelSpecError(f"unknown size '{size}' for family '{family}'; choose one of {', '.join(allowed)}")
    return SIZES[size]


