"""Shape models: a released checkpoint's configuration, tokenizer behaviour and processor exactly, randomly
initialised, with only the number of language and vision layers cut.

``safeeraser make-tiny-model --family llava --size shape7b`` copies ``llava-hf/llava-1.5-7b-hf`` (sizes and
models: ``released.RELEASED``). By default a shape model keeps the fewest layers its architecture allows
(each family module's ``MIN_*_LAYERS`` say why); ``text_layers`` / ``vision_layers`` choose more, up to
``"full"``, the released count. The tokenizer is built offline (``tokenizers.py``): real ids, BOS, EOS, PAD
and image token as released, pieces learned from the synthetic benchmark. Weights are saved in the
released checkpoint's dtype unless ``dtype`` says otherwise: CPU runs need ``bfloat16`` for LLaVA-1.5,
whose float16 weights CPU autocast cannot mix into bf16 operations (CUDA autocast can).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..sizes import ModelSpecError
from .chat_templates import CHAT_TEMPLATES
from .released import RELEASED, ReleasedModel

FULL = "full"  # a layer count meaning "as released"
DTYPES = ("float32", "bfloat16", "float16")


def family_module(family: str) -> Any:
    """``shapes/<family>.py``: ``MIN_TEXT_LAYERS``, ``MIN_VISION_LAYERS``, ``make_config``,
    ``make_processor`` and, where a random initialisation needs fixing, ``after_init(model)``."""
    return importlib.import_module(f"{__name__}.{family}")


def released_model(family: str, size: str) -> ReleasedModel:
    if (family, size) not in RELEASED:
        raise ModelSpecError(f"no released model is copied by size '{size}' of family '{family}'")
    return RELEASED[(family, size)]


def resolve_layers(
    family: str, size: str, text_layers: int | str | None, vision_layers: int | str | None
) -> tuple[int, int]:
    """(text, vision) layer counts: None means the family's minimum, "full" the released count."""
    module = family_module(family)
    released_counts = released_model(family, size).layer_counts()
    minimums = (module.MIN_TEXT_LAYERS, module.MIN_VISION_LAYERS)
    resolved = []
    requested = (text_layers, vision_layers)
    for name, value, minimum, full in zip(("text", "vision"), requested, minimums, released_counts, strict=True):
        count = minimum if value is None else full if value == FULL else _as_int(name, value)
        if not minimum <= count <= full:
            raise ModelSpecError(
                f"{name} layers must be {minimum}..{full} (or '{FULL}') for {family}/{size}, got {value}"
            )
        resolved.append(count)
    return tuple(resolved)


def check_dtype(dtype: str | None) -> str | None:
    if dtype is not None and dtype not in DTYPES:
        raise ModelSpecError(f"dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
    return dtype


def _as_int(name: str, value: int | str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ModelSpecError(f"{name} layers must be a number or '{FULL}', got '{value}'") from None


def shape_config(
    family: str, size: str, text_layers: int | str | None = None, vision_layers: int | str | None = None
) -> Any:
    """The transformers config of a shape model (no weights, no tokenizer)."""
    released = released_model(family, size)
    return family_module(family).make_config(released, *resolve_layers(family, size, text_layers, vision_layers))


def build_processor(family: str, size: str) -> Any:
    """The shape model's processor, its tokenizer inside (built offline, released ids and behaviour)."""
    from ..llava import LLAVA_TOKENS
    from ..tokenizer import default_corpus
    from .tokenizers import build_tokenizer

    released = released_model(family, size)
    tokenizer = build_tokenizer(released.tokenizer, default_corpus(LLAVA_TOKENS))
    return family_module(family).make_processor(released, tokenizer, CHAT_TEMPLATES[family])


def build_shape(
    family: str,
    size: str,
    seed: int = 0,
    text_layers: int | str | None = None,
    vision_layers: int | str | None = None,
    dtype: str | None = None,
) -> tuple[Any, Any]:
    """Return (model, processor) of a randomly initialised shape model, weights in ``dtype`` (default: the
    released checkpoint's)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from ..tokenizer import set_generation_tokens

    released = released_model(family, size)
    config = shape_config(family, size, text_layers, vision_layers)
    processor = build_processor(family, size)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=getattr(torch, dtype or released.dtype))
    after_init = getattr(family_module(family), "after_init", None)
    if after_init is not None:
        after_init(model)
    set_generation_tokens(model, processor.tokenizer)
    for key, value in released.generation.items():
        setattr(model.generation_config, key, value)
    return model, processor


def write_shape_skeleton(
    out_dir: str | Path,
    family: str,
    size: str,
    text_layers: int | str | None = None,
    vision_layers: int | str | None = None,
    dtype: str | None = None,
) -> Path:
    """A shape model's config, tokenizer and processor without weights, in ``out_dir`` (replaced if present).

    Enough for LLaMA-Factory to tokenize, and to build the randomly initialised model itself with
    ``train_from_scratch: true`` (it then uses the config's ``dtype``): how the benchmarks get full-size
    models without writing their weights.
    """
    from ....fileio import output_folder

    config = shape_config(family, size, text_layers, vision_layers)
    config.dtype = check_dtype(dtype) or released_model(family, size).dtype
    processor = build_processor(family, size)
    with output_folder(out_dir, "shape-skeleton", overwrite=True, unrecorded_ok=True) as scratch:
        config.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return Path(out_dir)
