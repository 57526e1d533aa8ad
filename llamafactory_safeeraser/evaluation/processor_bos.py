"""The BOS token of lm-eval's prompts: one at most, as the training prompts have (and no EOS)."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import SafeEraserError

logger = logging.getLogger(__name__)


def one_bos_like_training(processor: Any) -> None:
    """Make the processor lm-eval calls write one BOS at most, as the training prompts have (and no EOS).

    hf-multimodal calls the processor with the defaults and cannot pass ``add_special_tokens=False``. Where
    the tokenizer writes the BOS (LLaVA-1.5's ``<s>``), training has it too (``integration.template_text.missing_bos``).
    Where the processor writes one itself (MllamaProcessor prepends ``<|begin_of_text|>``) a tokenizer that
    also adds one (Llama 3's) would make two: its own is switched off.
    """
    tokenizer = processor.tokenizer
    if getattr(tokenizer, "add_eos_token", False):
        tokenizer.add_eos_token = False
    if leading_bos(processor) > 1 and hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False  # also rewrites a fast tokenizer's post-processor
    if leading_bos(processor) > 1:
        logger.warning("the model's processor writes two BOS tokens; lm-eval's prompts will differ from training's")


def check_vllm_bos(processor: Any) -> None:
    """vLLM's engine encodes prompts with the model's processor as released, which lm-eval cannot reach to
    switch a BOS off: a processor writing two (Mllama's with Llama 3's tokenizer) is refused, one line."""
    if leading_bos(processor) > 1:
        raise SafeEraserError(
            "key 'backend': the model's processor writes two BOS tokens and vLLM cannot be told to write one; "
            "evaluate it with backend=hf"
        )


def leading_bos(processor: Any) -> int:
    """How many BOS tokens the processor writes before a text."""
    bos = processor.tokenizer.bos_token_id
    ids = processor(text=["A"])["input_ids"][0]
    count = 0
    while bos is not None and count < len(ids) and ids[count] == bos:
        count += 1
    return count
