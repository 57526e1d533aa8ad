"""A model (plus LoRA adapter) answering image + question prompts in batches, prompted as training prompted it.

The inputs are the SafeEraser evaluation's (``encoding``: the lm-eval documents' prompt, the processor's
single BOS, the training resize). Batches are left-padded; generation stops at the tokenizer's EOS and the
template's stop words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..devices import default_device
from ..integration.template_text import template_stop_words
from .encoding import PromptEncoder
from .items import Item
from .settings import RespondSettings


def batch_seed(seed: int, batch_index: int) -> int:
    """The sampling seed of batch ``batch_index``: the same batch draws the same in every run."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{batch_index}".encode()).digest()[:7], "big")


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        on_gpu = device.startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


class ResponseModel:
    def __init__(self, settings: RespondSettings):
        from transformers import AutoModelForImageTextToText

        self.settings = settings
        self.device = default_device(settings.device)
        self.dtype = _dtype(settings.dtype, self.device)
        self.inputs = PromptEncoder(settings)
        model = AutoModelForImageTextToText.from_pretrained(settings.model, dtype=self.dtype)
        if settings.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, settings.adapter).merge_and_unload()  # faster generation
        self.model = model.to(self.device).eval()
        self.tokenizer = self.inputs.tokenizer
        self.stop_words = template_stop_words(settings.template)
        self.stop_ids = self._stop_ids()

    def _stop_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        for word in self.stop_words:
            token_id = self.tokenizer.convert_tokens_to_ids(word)
            if token_id is not None and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return sorted(i for i in ids if i is not None)

    def encode(self, items: Sequence[Item]) -> Any:
        """The padded batch the model generates from (ids, attention mask, pixel values, ...), on its device."""
        inputs = self.inputs.encode(items)
        return {
            name: value.to(self.device, self.dtype) if value.is_floating_point() else value.to(self.device)
            for name, value in inputs.items()
        }

    def answer(self, items: Sequence[Item], batch_index: int) -> list[str]:
        import torch

        settings = self.settings
        inputs = self.encode(items)
        sampling = (
            {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
            if settings.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        torch.manual_seed(batch_seed(settings.seed, batch_index))
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [self._cut(text) for text in texts]

    def _cut(self, text: str) -> str:
        for word in self.stop_words:  # a stop word the tokenizer does not hold as one token
            text = text.split(word)[0]
        return text.strip()
