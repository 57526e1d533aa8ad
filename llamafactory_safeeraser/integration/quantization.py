"""Weight quantization as LLaMA-Factory's ``quantization_bit`` does it: bitsandbytes through transformers'
``BitsAndBytesConfig`` (8-bit: LLM.int8, absmax per output row; 4-bit: NF4 in blocks of 64, double quantization),
built by LLaMA-Factory's own ``configure_quantization`` from its ``ModelArguments`` defaults.

The evaluator loads an unlearned model (adapter merged) this way to re-score it after quantization.
"""

from __future__ import annotations

import logging
import re
import types
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError

QUANTIZATION_BITS = (8, 4)
LIBRARY = "bitsandbytes"
# bitsandbytes' CPU kernel packs 4-bit weights by whole blocks of input features: a linear layer whose input width
# is not a multiple of the block fails in its first forward (bitsandbytes 0.50: "shape '[32, 0]' is invalid").
NF4_BLOCKSIZE = 64


def check_installed() -> None:
    """One line, before any model loads, when bitsandbytes is missing."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise SafeEraserError(
            "key 'quantization_bits': bitsandbytes is not installed (pip install 'llamafactory-safeeraser[quantize]')"
        )


def bitsandbytes_config(bits: int, compute_dtype: Any, log: bool = True) -> Any:
    """The ``BitsAndBytesConfig`` LLaMA-Factory builds for ``quantization_bit: bits`` (its defaults otherwise:
    ``quantization_type: nf4``, ``double_quantization: true``), computing in ``compute_dtype``; ``log``: let
    LLaMA-Factory log its "Quantizing model to N bit" line (on when a model is loaded with it)."""
    from llamafactory.hparams import ModelArguments
    from llamafactory.model.model_utils.quantization import configure_quantization

    from .contract import problems

    if bits not in QUANTIZATION_BITS:
        raise SafeEraserError(f"key 'quantization_bits': {bits} is not one of {', '.join(map(str, QUANTIZATION_BITS))}")
    check_installed()
    changed = problems(["quantize"])
    if changed:
        raise SafeEraserError(f"key 'quantization_bits': this LLaMA-Factory differs: {'; '.join(changed)}")
    model_args = ModelArguments(model_name_or_path="unused", quantization_bit=bits)
    model_args.compute_dtype = compute_dtype
    init_kwargs: dict[str, Any] = {}
    logger = logging.getLogger(configure_quantization.__module__)
    level = logger.level
    if not log:
        logger.setLevel(logging.WARNING)
    try:
        # a config without quantization_config: LLaMA-Factory's on-the-fly path (its device map is not used)
        configure_quantization(types.SimpleNamespace(), None, model_args, False, init_kwargs)
    finally:
        logger.setLevel(level)
    return init_kwargs["quantization_config"]


def describe(bits: int) -> dict[str, str]:
    """results.json's ``run.quantization``: the library (with its version) and the method."""
    from importlib.metadata import version

    config = bitsandbytes_config(bits, "float32", log=False)
    if bits == 8:
        method = f"LLM.int8: int8 absmax per output row, outlier threshold {config.llm_int8_threshold:g}"
    else:
        double = ", double quantization" if config.bnb_4bit_use_double_quant else ""
        method = f"{config.bnb_4bit_quant_type} absmax per block of {NF4_BLOCKSIZE}{double}"
    return {"library": f"{LIBRARY} {version(LIBRARY)} (transformers BitsAndBytesConfig)", "method": method}


def cpu_unsupported_modules(model: Any) -> list[str]:
    """Linear layers bitsandbytes' CPU 4-bit kernel cannot run (input width not a multiple of its block), by name;
    only tiny test models have them (a released model's widths are multiples of 64)."""
    import torch

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module.in_features % NF4_BLOCKSIZE
    ]


def _cpu_skip_modules(model_dir: str | Path) -> list[str] | None:
    """``llm_int8_skip_modules`` for 4-bit on CPU: the unsupported layers plus transformers' default skips (an
    explicit list replaces them); None when every layer can be quantized."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.quantizers.base import get_keys_to_not_convert

    with torch.device("meta"):  # the module tree without weights
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
    unsupported = cpu_unsupported_modules(model)
    if not unsupported:
        return None
    return [re.escape(name) + "$" for name in (*unsupported, *get_keys_to_not_convert(model))]  # exact names


def load_quantized_model(model_dir: str | Path, bits: int, device: str) -> Any:
    """A Hugging Face checkpoint loaded with its linear layers quantized to ``bits`` on ``device``, computing in the
    checkpoint's dtype (the output embedding stays in full precision, as transformers keeps it). On CPU, 4-bit
    leaves the layers of :func:`cpu_unsupported_modules` in full precision too."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    dtype = AutoConfig.from_pretrained(model_dir).dtype or torch.float32
    config = bitsandbytes_config(bits, getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    if bits == 4 and torch.device(device).type == "cpu":
        config.llm_int8_skip_modules = _cpu_skip_modules(model_dir)
    return AutoModelForImageTextToText.from_pretrained(
        model_dir, dtype="auto", quantization_config=config, device_map={"": device}
    )
