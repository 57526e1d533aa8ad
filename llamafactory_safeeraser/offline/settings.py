"""The keys of ``safeeraser make-tiny-model`` and ``safeeraser make-demo-data``, declared once."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_settings, setting
from .tiny_models.sizes import ALL_SIZES, FAMILY_SIZES

_LAYERS = "shape sizes: {} layers to keep, a number or 'full' (default: the fewest the architecture allows)"
_SIZES = "; ".join(f"{family}: {', '.join(sizes)}" for family, sizes in FAMILY_SIZES.items())


@dataclass(frozen=True)
class TinyModelSettings:
    out: str | None = setting(help="output folder of the checkpoint", required=True)
    family: str = setting("llava", choices=tuple(FAMILY_SIZES), help="model family")
    size: str = setting("tiny", choices=ALL_SIZES, help=f"{_SIZES} (shape*: a released model's exact shape)")
    text_layers: str | None = setting(help=_LAYERS.format("language-model"))
    vision_layers: str | None = setting(help=_LAYERS.format("vision-encoder"))
    dtype: str | None = setting(
        help="shape sizes: weight dtype (default: the released checkpoint's; CPU runs of llava need bfloat16)"
    )
    seed: int = setting(0, help="seed of the random initialisation")
    overwrite: bool = setting(False, help="replace an existing output folder")

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class DemoDataSettings:
    out: str | None = setting(help="output folder of the synthetic benchmark", required=True)
    images_per_concept: int = setting(4, help="images drawn per concept", minimum=1)
    seed: int = setting(233, help="seed of the images and the texts")
    overwrite: bool = setting(False, help="replace an existing output folder")

    def __post_init__(self) -> None:
        check_settings(self)
