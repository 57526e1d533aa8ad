"""The ``hf`` judge: a local Hugging Face causal language model."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from ...devices import default_device
from ...errors import SafeEraserError
from .base import Completion, PromptJudge
from .config import JudgeConfig
from .registry import register_judge


@register_judge("hf")
class HFJudge(PromptJudge):
    """A local Hugging Face causal LM, greedy decoding, prompts batched during prefetch."""

    name = "hf"
    required: ClassVar[dict[str, tuple[str, str]]] = {"model": ("a model", "metadata 'judge_model' / --judge-model")}

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = default_device(config.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        except (OSError, ValueError) as err:  # a missing folder, an unknown hub id (offline), no tokenizer
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SafeEraserError(f"{self.describe()}: cannot load the judge model: {reason}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # generation continues from the right end
        dtype_key = "dtype" if _transformers_at_least("4.56") else "torch_dtype"  # the older name before 4.56
        self.model = AutoModelForCausalLM.from_pretrained(config.model, **{dtype_key: "auto"}).to(device).eval()
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))

    def _format(self, prompt: str) -> str:
        if self.chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        texts = [self._format(prompt) for prompt in prompts]
        # A chat template already holds the special tokens; plain prompts get the tokenizer's own (BOS).
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat)
        encoded = encoded.to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _send(self, prompts: list[str], on_reply: Callable[[str, Completion], None]) -> None:
        for start in range(0, len(prompts), self.config.batch_size):
            batch = prompts[start : start + self.config.batch_size]
            try:
                replies = self._generate(batch)
            except Exception as err:  # e.g. a prompt longer than the model's context
                for prompt in batch:
                    on_reply(prompt, (None, f"generation failed ({type(err).__name__}: {err})"))
                continue
            for prompt, reply in zip(batch, replies, strict=True):
                on_reply(prompt, (reply, None))


def _transformers_at_least(version: str) -> bool:
    from importlib.metadata import version as installed

    from packaging.version import Version

    return Version(installed("transformers")) >= Version(version)
