"""Image rephrasing: the record's image cropped, rescaled, noised, JPEG-compressed, greyed or flipped.

The question is kept; only the picture changes, at the strength each attack states. On the SARR set the SD image
is changed the same way (does a benign answer about it survive the same perturbation?). Random choices (the crop's
position, the noise) come from the document's seeded rng. Sources: Gaussian noise, JPEG and rescaling
(pixelation, enlarged back bilinearly) are ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019: sigma 0.1
lies between its severities 0.08 and 0.12; quality 15 and factor 0.5 are severities of its own); crop, flip and
greyscale are SimCLR's augmentations (Chen et al., ICML 2020).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .attack import Attack, AttackContext, AttackInput

if TYPE_CHECKING:
    from PIL.Image import Image

CORRUPTIONS = "ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019)"
AUGMENTATIONS = "SimCLR augmentations (Chen et al., ICML 2020)"
CROP_KEEP = 0.8  # the kept window's share of the width and of the height
RESCALE = 0.5  # down to this share of each side, then back to the original size
NOISE_SIGMA = 0.1  # of the full 0..255 range
JPEG_QUALITY = 15
KINDS = ("efficacy", "generality", "sarr")


def crop(image: Image, rng: random.Random) -> Image:
    """A window of CROP_KEEP of the width and height, at a random position (the model's processor resizes it)."""
    width, height = max(1, round(image.width * CROP_KEEP)), max(1, round(image.height * CROP_KEEP))
    left, top = rng.randint(0, image.width - width), rng.randint(0, image.height - height)
    return image.crop((left, top, left + width, top + height))


def rescale(image: Image, rng: random.Random) -> Image:
    """Down to RESCALE of each side (area average) and back up (bilinear): detail lost, size and so the image-token
    count kept."""
    from PIL import Image

    small = (max(1, round(image.width * RESCALE)), max(1, round(image.height * RESCALE)))
    return image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.BILINEAR)


def noise(image: Image, rng: random.Random) -> Image:
    """Independent Gaussian noise of NOISE_SIGMA * 255 on every channel of every pixel, clipped to 0..255."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float64)
    drawn = np.random.default_rng(rng.getrandbits(64)).normal(0.0, NOISE_SIGMA * 255.0, pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels + drawn), 0, 255).astype(np.uint8))  # H x W x 3 bytes: RGB


def jpeg(image: Image, rng: random.Random) -> Image:
    """Encoded as JPEG at JPEG_QUALITY and decoded again."""
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def grayscale(image: Image, rng: random.Random) -> Image:
    """The luma (ITU-R 601-2: L = 0.299 R + 0.587 G + 0.114 B) in all three channels."""
    return image.convert("L").convert("RGB")


def flip(image: Image, rng: random.Random) -> Image:
    """Mirrored left to right."""
    from PIL import Image

    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _image_attack(
    name: str, title: str, source: str, strength: str, change: Callable[[Image, random.Random], Image]
) -> Attack:
    def apply(given: AttackInput, rng: random.Random, context: AttackContext) -> AttackInput:
        return replace(given, image=change(given.image, rng))

    return Attack(name, "image", title, source, strength, KINDS, apply, edits_question=False)


ATTACKS = [
    _image_attack("crop", "a random window of the image", AUGMENTATIONS, f"keep {CROP_KEEP:.0%} of each side", crop),
    _image_attack(
        "rescale",
        "downscaled (area average) and upscaled back (bilinear)",
        CORRUPTIONS,
        f"{RESCALE:.0%} of each side",
        rescale,
    ),
    _image_attack("noise", "Gaussian noise on every pixel, clipped", CORRUPTIONS, f"sigma {NOISE_SIGMA} of 255", noise),
    _image_attack("jpeg", "JPEG-compressed and decoded", CORRUPTIONS, f"quality {JPEG_QUALITY}", jpeg),
    _image_attack("grayscale", "luma only (ITU-R 601-2), in three channels", AUGMENTATIONS, "full", grayscale),
    _image_attack("flip", "mirrored left to right", AUGMENTATIONS, "horizontal", flip),
]
