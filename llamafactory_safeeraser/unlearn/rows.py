"""One training row from its prompt and answer token ids (pure functions, no LLaMA-Factory).

A set is tokenized once into prompt ids (template, system prompt, question and every image token) and
answer ids (the answer followed by the template's end-of-turn tokens). The row a step trains on is
assembled from them here, so that three choices live in one place:

- **truncation cuts the answer, never the prompt**: a row longer than ``cutoff_len`` loses the end of its
  answer (as the SafeEraser reference truncates a conversation at its end); a prompt that alone fills the
  cutoff is an error, because cutting it would drop the question or image tokens;
- **end-of-turn targets**: whether the EOS after the answer is a target (``eos_target``); the reference
  masks it, and for gradient ascent a target EOS teaches the model never to stop;
- PO's refusal answers are spliced onto the forget prompts, so a new refusal can be drawn every epoch
  without tokenizing the set again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

IGNORE_INDEX = -100  # the label of a position that is no target (LLaMA-Factory's and Hugging Face's value)


def answer_content_length(answer_ids: Sequence[int], end_of_turn_ids: Collection[int]) -> int:
    """Number of leading answer tokens before the template's end-of-turn tokens (EOS and what follows it)."""
    for position in range(len(answer_ids) - 1, -1, -1):
        if answer_ids[position] in end_of_turn_ids:
            return position
    return len(answer_ids)


def fits_cutoff(prompt_length: int, cutoff_len: int) -> bool:
    """Whether at least one answer token fits after the prompt."""
    return prompt_length < cutoff_len


def assemble_row(
    prompt_ids: Sequence[int],
    answer_ids: Sequence[int],
    end_of_turn_ids: Collection[int],
    cutoff_len: int,
    eos_target: bool,
) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` of one row, the answer cut to fit ``cutoff_len``.

    The answer's last end-of-turn token and what follows it (the template's closing) are targets only
    when ``eos_target``. Raises ValueError when the prompt alone leaves no room for an answer token.
    """
    content_length = answer_content_length(answer_ids, end_of_turn_ids)
    if not fits_cutoff(len(prompt_ids), cutoff_len):
        raise ValueError(f"the prompt alone is {len(prompt_ids)} tokens, cutoff_len is {cutoff_len}")
    kept = list(answer_ids[: cutoff_len - len(prompt_ids)])
    labels = [token if (i < content_length or eos_target) else IGNORE_INDEX for i, token in enumerate(kept)]
    input_ids = [*prompt_ids, *kept]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + labels,
    }
