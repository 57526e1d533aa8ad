"""Tokenizers with a released tokenizer's ids and special-token behaviour, built offline.

The learned pieces are trained on the synthetic benchmark's texts (as for the tiny models); what must
match the released tokenizer is everything around them: the tokenization scheme (SentencePiece-style
with a ``▁`` word marker and byte fallback for LLaVA-1.5's Llama-2 tokenizer; byte-level BPE after a
regex split for Qwen2 and Llama 3; Gemma's SentencePiece-style BPE with no marker before the first word),
the size of the learned vocabulary (unused ids are filled with
pieces no text can produce), the special tokens at their released ids, BOS/EOS/PAD, and whether
encoding adds the BOS. The tokenizer classes are the released ones (``LlamaTokenizer``,
``Qwen2Tokenizer``, ``GemmaTokenizer``, the generic fast tokenizer for Llama 3), so transformers builds the same
pipeline around the pieces as it does for the real files.
"""

from __future__ import annotations

import json
from typing import Any

from .released import ReleasedTokenizer

# pre-tokenizer patterns of the released tokenizer.json files (they differ in how digits are grouped)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LEARNED_PIECES = 8000  # upper bound; the synthetic corpus yields far fewer


def build_tokenizer(spec: ReleasedTokenizer, texts: list[str]) -> Any:
    """A tokenizer for ``spec`` whose learned pieces come from ``texts``."""
    builders = {"llama2": _llama2, "qwen2": _qwen2, "llama3": _llama3, "gemma": _gemma}
    tokenizer = builders[spec.kind](spec, texts)
    wrong = {i: t for i, t in spec.tokens.items() if tokenizer.convert_tokens_to_ids(t) != i}
    if wrong:  # a builder bug, not a user error
        raise RuntimeError(f"special tokens not at their released ids: {wrong}")
    return tokenizer


def _filled(vocab: dict[str, int], size: int) -> dict[str, int]:
    """``vocab`` padded to ``size`` ids with pieces no merge produces and no pre-token equals."""
    for n in range(size - len(vocab)):
        vocab[f"<unused_piece_{n}>"] = len(vocab)
    return vocab


def _train(texts: list[str], pre_tokenizer: Any, alphabet: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """BPE pieces (in id order) and merges learned from ``texts``."""
    from tokenizers import Tokenizer, models, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=LEARNED_PIECES, min_frequency=1, initial_alphabet=alphabet, show_progress=False
    )
    core.train_from_iterator(texts, trainer=trainer)
    model = json.loads(core.to_str())["model"]
    pieces = [piece for piece, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return pieces, merges


def _base_vocab(spec: ReleasedTokenizer, pieces: list[str], reserved: dict[str, int]) -> dict[str, int]:
    """Ids: ``reserved`` first, then the learned pieces, filled up to the released size."""
    vocab = dict(reserved)
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    return _filled(vocab, spec.base_vocab_size)


def _added_tokens(spec: ReleasedTokenizer) -> list[str]:
    """Special tokens above the learned vocabulary, in id order."""
    return [spec.tokens[i] for i in sorted(spec.tokens) if i >= spec.base_vocab_size]


def _llama2(spec: ReleasedTokenizer, texts: list[str]) -> Any:
    """Llama-2's scheme: ``<unk> <s> </s>``, 256 byte pieces ``<0x00>``..``<0xFF>``, then word pieces."""
    from tokenizers import pre_tokenizers
    from transformers import LlamaTokenizer

    # pieces never span a word marker, as SentencePiece's (split_by_whitespace) never do
    marker = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    pieces, merges = _train(texts, marker, ["▁"])
    reserved = {spec.tokens[i]: i for i in range(3)}
    reserved.update({f"<0x{byte:02X}>": 3 + byte for byte in range(256)})
    tokenizer = LlamaTokenizer(
        vocab=_base_vocab(spec, pieces, reserved),
        merges=merges,
        unk_token=spec.unk_token,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        extra_special_tokens=spec.named_tokens,
        **spec.extra,
    )
    for token in _added_tokens(spec):  # in id order: each new token takes the next id
        tokenizer.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
    tokenizer.pad_token = spec.pad_token
    return tokenizer


def _byte_level_pieces(texts: list[str], pattern: str) -> tuple[list[str], list[tuple[str, str]]]:
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return _train(texts, split, pre_tokenizers.ByteLevel.alphabet())


def _with_tokens_at_their_ids(tokenizer_class: Any, spec: ReleasedTokenizer, vocab: dict, merges: list) -> Any:
    """A ``tokenizer_class`` over ``vocab``, which holds every special token at its released id already, so
    registering them keeps those ids."""
    tokenizer = tokenizer_class(
        vocab=vocab,
        merges=merges,
        unk_token=spec.unk_token,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        extra_special_tokens=spec.named_tokens,
        **spec.extra,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(spec.tokens.values())})
    return tokenizer


def _qwen2(spec: ReleasedTokenizer, texts: list[str]) -> Any:
    from transformers import Qwen2Tokenizer

    pieces, merges = _byte_level_pieces(texts, QWEN2_SPLIT)
    # the special tokens sit in the vocabulary at their ids, so registering them keeps those ids
    vocab = {**_base_vocab(spec, pieces, {}), **{token: i for i, token in spec.tokens.items()}}
    return _with_tokens_at_their_ids(Qwen2Tokenizer, spec, vocab, merges)


def _llama3(spec: ReleasedTokenizer, texts: list[str]) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, merges = _byte_level_pieces(texts, LLAMA3_SPLIT)
    vocab = {**_base_vocab(spec, pieces, {}), **{token: i for i, token in spec.tokens.items()}}
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in spec.tokens.values()])
    bos = spec.bos_token
    core.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, spec.id_of(bos))]
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        clean_up_tokenization_spaces=True,
        extra_special_tokens=spec.named_tokens,
        **spec.extra,
    )


def _gemma(spec: ReleasedTokenizer, texts: list[str]) -> Any:
    """Gemma's scheme: spaces written as ``▁`` (no marker before the first word), byte fallback, BOS added."""
    from tokenizers import pre_tokenizers
    from transformers import GemmaTokenizer

    # pieces never span a word marker, as SentencePiece's (split_by_whitespace) never do
    marker = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    pieces, merges = _train(texts, marker, ["▁"])
    # the special tokens keep their ids (some far up the vocabulary); bytes and pieces take the free ones
    vocab = {token: i for i, token in spec.tokens.items()}
    free = (i for i in range(spec.base_vocab_size) if i not in spec.tokens)
    for piece in (*(f"<0x{byte:02X}>" for byte in range(256)), *pieces):
        if piece not in vocab:
            vocab[piece] = next(free)
    for n, token_id in enumerate(free):
        vocab[f"<unused_piece_{n}>"] = token_id
    return _with_tokens_at_their_ids(GemmaTokenizer, spec, vocab, merges)
