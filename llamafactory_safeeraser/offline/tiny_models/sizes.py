"""Model sizes and which family is built in which size (standard library only: the CLI reads it at start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Family:
    """One model family: the LLaMA-Factory template it trains with and the sizes it is built in.

    The family's name is also its module's: ``tiny_models/<name>.py`` has ``build(size, seed)`` and, for the
    shape sizes, ``tiny_models/shapes/<name>.py`` its released config's pieces. A new family is one entry
    here plus those modules.
    """

    template: str
    sizes: tuple[str, ...] = ("tiny",)
    shapes: tuple[str, ...] = ()  # a released checkpoint's exact configuration with fewer layers

    @property
    def all_sizes(self) -> tuple[str, ...]:
        return (*self.sizes, *self.shapes)


FAMILY_TABLE: dict[str, Family] = {
    # LLaVA also in the demo and benchmark sizes; the other families tiny only, for tests
    "llava": Family("llava", sizes=tuple(SIZES), shapes=("shape7b", "shape13b")),
    "qwen2_vl": Family("qwen2_vl", shapes=("shape7b",)),
    "mllama": Family("mllama", shapes=("shape11b",)),
    "gemma3": Family("gemma3", shapes=("shape12b",)),
    "llava_next": Family("llava_next", shapes=("shape7b",)),
    "intern_vl": Family("intern_vl", shapes=("shape8b",)),
    "qwen2_5_vl": Family("qwen2_vl", shapes=("shape7b",)),
    "qwen3_vl": Family("qwen3_vl", shapes=("shape8b",)),
}
SHAPE_SIZES = {name: family.shapes for name, family in FAMILY_TABLE.items()}
FAMILY_SIZES = {name: family.all_sizes for name, family in FAMILY_TABLE.items()}
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


def text_sizes(spec: TinySize, tokenizer: Any) -> dict[str, int]:
    """The language model's sizes of a tiny size, as a transformers text config's keys."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "max_position_embeddings": 2048,
    }


def tiny_size(size: str, family: str) -> TinySize:
    check_size(size, family)
    if size not in SIZES:
        raise ModelSpecError(f"size '{size}' is a released shape, not a tiny size")
    return SIZES[size]
