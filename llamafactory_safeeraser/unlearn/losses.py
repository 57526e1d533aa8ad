"""Unlearning losses as pure tensor functions (no model, no trainer, no LLaMA-Factory).

Shapes: ``logits`` [B, T, V] from a causal LM, ``labels`` [B, T] with ``IGNORE_INDEX`` on prompt,
image and padding positions. Position t's logits predict token t+1, so labels shift by one.
"NLL" is the mean token cross-entropy over a row's answer tokens (prompt and image tokens masked),
averaged over rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rows import IGNORE_INDEX


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast before softmax, as transformers' own LM loss does."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every next answer token, [B, T-1], and the answer mask, [B, T-1]."""
    shifted_logits = _upcast(logits[:, :-1, :])
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    # cross_entropy gathers the label's log-softmax without keeping a [B, T, V] log-prob copy
    nll = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view_as(shifted_labels)
    return -nll, mask


# Every reduction below is a mean over rows of a per-row quantity, never a mean over the batch's tokens:
# then any split of a global batch into micro-batches, accumulation steps or processes (of equal row
# counts) gives the same gradient, and a batch of 1 per device (the SafeEraser reference) means the same.
def row_means(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``values`` [B, T] (or of ``values`` [N] given at the N set positions of ``mask``), [B]."""
    counts = mask.sum(-1).clamp(min=1)
    if values.shape == mask.shape:
        return (values * mask).sum(-1) / counts
    rows = torch.arange(mask.size(0), device=mask.device).unsqueeze(1).expand_as(mask)[mask.bool()]
    sums = torch.zeros(mask.size(0), dtype=values.dtype, device=values.device).index_add(0, rows, values)
    return sums / counts


def per_sequence_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token NLL of each sequence's answer, [B]."""
    return -row_means(logps, mask)


def mean_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """NLL of a set: each row's mean answer-token NLL, averaged over rows."""
    return per_sequence_nll(logps, mask).mean()


def summed_logps(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log pi(y|x): summed log-probability of each sequence's answer, [B]."""
    return (logps * mask).sum(-1)


def guarded_ascent(
    logps: torch.Tensor, mask: torch.Tensor, nll_ceiling: float = math.inf
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-ascent term -NLL(forget), held at a ceiling per sequence.

    Ascent is unbounded: once an answer is forgotten, pushing its NLL further only drags the
    shared weights (and every other answer) into gibberish. Sequences whose answer NLL is already
    above ``nll_ceiling`` therefore get the opposite sign (descent), so each forget answer's NLL
    is pulled towards the ceiling from both sides instead of running away. Returns the loss and
    the number of sequences held back. With the default ceiling (infinity) this is ``-mean_nll``.
    """
    nll = per_sequence_nll(logps, mask)
    held_back = nll.detach() >= nll_ceiling
    sign = 1.0 - 2.0 * held_back.to(nll.dtype)  # +1: ascend (minimise log p), -1: descend
    return -(sign * nll).mean(), held_back.sum()


def joint_nll(
    logps: torch.Tensor, mask: torch.Tensor, other_logps: torch.Tensor, other_mask: torch.Tensor, other_weight: float
) -> torch.Tensor:
    """NLL of row pairs: row i of both sets as one sequence (one token mean over both), averaged over pairs.

    ``other_weight`` weights the second set's tokens in the numerator (1: a plain token mean over the pair).
    """
    total = -(logps * mask).sum(-1) - other_weight * (other_logps * other_mask).sum(-1)
    return (total / (mask.sum(-1) + other_mask.sum(-1)).clamp(min=1)).mean()


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B, T] mask of the positions whose logits predict an answer token (position t predicts token t+1)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


# The same, from logits and labels.
def answer_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return mean_nll(*token_logps(logits, labels))


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return per_sequence_nll(*token_logps(logits, labels))


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return summed_logps(*token_logps(logits, labels))


def guarded_ascent_loss(
    logits: torch.Tensor, labels: torch.Tensor, nll_ceiling: float = math.inf
) -> tuple[torch.Tensor, torch.Tensor]:
    return guarded_ascent(*token_logps(logits, labels), nll_ceiling)


def kl_divergence(
    reference_logits: torch.Tensor,
    logits: torch.Tensor,
    positions: torch.Tensor,
    reference_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-level KL(p_ref || p_theta) over the vocabulary at ``positions`` [B, T], mean per row, then over rows.

    ``reference_positions`` is needed when the reference rows were padded differently (collated on their
    own): positions are then matched in row-major order, which padding keeps.
    """
    positions = positions.bool()
    reference_positions = positions if reference_positions is None else reference_positions.bool()
    ref_logp = F.log_softmax(_upcast(reference_logits[reference_positions]), dim=-1)
    logp = F.log_softmax(_upcast(logits[positions]), dim=-1)
    if ref_logp.shape != logp.shape:
        raise ValueError(f"reference and policy positions differ: {tuple(ref_logp.shape)} vs {tuple(logp.shape)}")
    if logp.numel() == 0:
        return logits.sum() * 0.0
    per_position = F.kl_div(logp, ref_logp, reduction="none", log_target=True).sum(-1)  # sum_v p_ref log(p_ref/p)
    return row_means(per_position, positions).mean()


def npo_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024): (2/beta) * mean log(1 + (pi_theta / pi_ref)^beta).

    log(1 + r^beta) = softplus(beta * log r), computed stably.
    """
    return (2.0 / beta) * F.softplus(beta * (policy_logps - reference_logps)).mean()


def simnpo_loss(policy_logps: torch.Tensor, answer_lengths: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimNPO (Fan et al. 2024): (2/beta) * mean softplus(beta * log pi(y|x) / |y| + gamma).

    NPO without a reference model: the length-normalised log-probability with a margin gamma,
    i.e. -(2/beta) * log sigmoid(-(beta/|y|) log pi(y|x) - gamma).
    """
    normalised = policy_logps / answer_lengths.clamp(min=1)
    return (2.0 / beta) * F.softplus(beta * normalised + gamma).mean()


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO: -mean log sigmoid(beta * ((log pi_c - log ref_c) - (log pi_r - log ref_r)))."""
    margin = (chosen_logps - reference_chosen_logps) - (rejected_logps - reference_rejected_logps)
    return -F.logsigmoid(beta * margin).mean()


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error over the hidden units at the positions where ``mask`` [B, T] is set: mean per row, then
    over rows.

    ``hidden`` [B, T, H]; ``target`` [H] (broadcast) or [N, H] for the N masked positions.
    """
    mask = mask.bool()
    selected = hidden[mask]
    if selected.numel() == 0:
        return hidden.sum() * 0.0
    return row_means(((selected - target) ** 2).mean(-1), mask).mean()


def answer_lengths(labels: torch.Tensor) -> torch.Tensor:
    """Number of answer tokens per row, [B]."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(-1)
