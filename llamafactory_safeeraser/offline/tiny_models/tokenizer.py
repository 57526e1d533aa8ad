"""The pieces every tiny family shares: its chat template's text, its tokenizer's special tokens, a BPE
tokenizer trained offline on the synthetic benchmark's texts, and the generation token ids."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatFormat:
    """A LLaMA-Factory template's text pieces, as the model's chat template renders them.

    ``image`` is what one image part of a user turn becomes: the user content ``"<image>\\n" + question``
    after the template's multimodal plugin, with the image token not yet expanded (the processor
    expands it). tests/test_model_families.py checks every family's chat template against
    ``integration.template_text.render_user_prompt``, i.e. against LLaMA-Factory's own template.
    """

    default_system: str
    system_open: str
    system_close: str
    user_open: str
    user_close: str  # LLaMA-Factory's user slot also opens the assistant turn
    assistant_close: str
    image: str
    prefix: str = ""
    system_in_user: bool = False  # the system turn opens the first user turn (LLaMA-Factory's Llama2Template)


def chat_template(fmt: ChatFormat) -> str:
    """A Jinja chat template for ``fmt`` (system turn optional; the default system when none is given)."""
    q = json.dumps  # a JSON string is also a valid Jinja string literal, escapes included
    system_block = (
        "{%- if system -%}{{- " + q(fmt.system_open) + " + system + " + q(fmt.system_close) + " -}}{%- endif -%}"
    )
    return (
        "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] if messages[0]['content'] is string "
        "else messages[0]['content'][0]['text'] -%}{%- set messages = messages[1:] -%}"
        "{%- else -%}{%- set system = " + q(fmt.default_system) + " -%}{%- endif -%}"
        "{{- "
        + q(fmt.prefix)
        + " -}}"
        + ("" if fmt.system_in_user else system_block)
        + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{{- "
        + q(fmt.user_open)
        + " -}}"
        + ("{%- if loop.first -%}" + system_block + "{%- endif -%}" if fmt.system_in_user else "")
        + "{%- endif -%}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{- " + q(fmt.image) + " -}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{%- if message['role'] == 'user' -%}{{- " + q(fmt.user_close) + " -}}"
        "{%- else -%}{{- " + q(fmt.assistant_close) + " -}}{%- endif -%}"
        "{%- endfor -%}"
    )


@dataclass(frozen=True)
class TokenizerSpec:
    """The special tokens of a family's tokenizer; they take the first ids, in this order."""

    special_tokens: tuple[str, ...]
    bos_token: str | None
    eos_token: str
    pad_token: str
    unk_token: str | None
    named_tokens: dict[str, str] = field(default_factory=dict)  # e.g. image_token, read by the processors
    corpus: tuple[str, ...] = ()  # template texts the BPE should learn besides the synthetic benchmark
    bos_on_encode: bool = False  # the tokenizer writes BOS on a default encode (Gemma's), as the released one


def train_tokenizer(texts: list[str], vocab_size: int, spec: TokenizerSpec, template: str) -> Any:
    """Byte-level BPE trained on ``texts`` (byte fallback covers any other text), with ``spec``'s special tokens.

    The tokenizer adds no BOS by itself (LLaMA-Factory writes the BOS where its template has one), unless
    ``spec.bos_on_encode``: then a default encode starts with BOS, as Gemma's tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=spec.unk_token))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(spec.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=spec.unk_token,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        extra_special_tokens=dict(spec.named_tokens),
        padding_side="right",
        model_max_length=2048,
        chat_template=template,
        add_bos_token=spec.bos_on_encode,
    )
    if spec.bos_on_encode:
        tokenizer.init_kwargs["add_bos_token"] = True  # saved, so that the loaded tokenizer says it adds BOS
    return tokenizer


def default_corpus(spec: TokenizerSpec) -> list[str]:
    """The synthetic benchmark's texts, the built-in refusals and the family's template texts."""
    from ...data.refusals import BUILTIN_REFUSALS
    from ..synthetic import tokenizer_corpus

    return [*spec.corpus, *BUILTIN_REFUSALS, *tokenizer_corpus()]


def set_generation_tokens(model: Any, tokenizer: Any) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
