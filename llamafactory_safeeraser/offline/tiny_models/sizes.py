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


# Shape sizes: a released checkpoint's exact configuration with fewer layers (``shapes/released.py``).
SHAPE_SIZES = {"llava": ("shape7b", "shape13b"), "qwen2_vl": ("shape7b",), "mllama": ("shape11b",)}

# Sizes each family is built in: the new families tiny only for tests, LLaVA also for the demo and
# benchmarks; every family at its released shapes.
FAMILY_SIZES = {
    "llava": (*SIZES, *SHAPE_SIZES["llava"]),
    "qwen2_vl": ("tiny", *SHAPE_SIZES["qwen2_vl"]),
    "mllama": ("tiny", *SHAPE_SIZES["mllama"]),
}
ALL_SIZES = tuple(dict.fromkeys(size for sizes in FAMILY_SIZES.values() for size in sizes))


class ModelSpecError(SafeEraserError, ValueError):
    """An unknown family, or a size that family is not built in."""


def check_size(size: str, family: str) -> None:
    if family not in FAMILY_SIZES:
        raise ModelSpecError(f"unknown model family '{family}'; choose one of {', '.join(FAMILY_SIZES)}")
    allowed = FAMILY_SIZES[family]
    if size not in allowed:
        raise ModelSpecError(f"unknown size '{size}' for family '{family}'; choose one of {', '.join(allowed)}")


def is_shape(size: str) -> bool:
    return any(size in sizes for sizes in SHAPE_SIZES.values())


def tiny_size(size: str, family: str) -> TinySize:
    check_size(size, family)
    if size not in SIZES:
        raise ModelSpecError(f"size '{size}' is a released shape, not a tiny size")
    return SIZES[size]


