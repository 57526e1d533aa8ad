"""Unlearning losses as pure tensor functions (no model, no trainer, no LLaMA-Factory).

Shapes: ``logits`` [B, T, V] from a causal LM, ``labels`` [B, T] with ``IGNORE_INDEX`` on prompt,
image and padding positions. Position t's logits predict token t+1, so labels shift by one.
"NLL" is the mean token cross-entropy over answer tokens only (SPEC section 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


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


# Reductions of token_logps' (logps, mask); UnlearningBatch computes token_logps once per set and reuses it.
def mean_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token NLL over all answer tokens of the batch (the usual LM loss)."""
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


def per_sequence_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token NLL of each sequence's answer, [B]."""
    return -(logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)


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
    held_back = per_sequence_nll(logps, mask).detach() >= nll_ceiling
    sign = 1.0 - 2.0 * held_back.to(logps.dtype)  # +1: ascend (minimise log p), -1: descend
    loss = (logps * mask * sign.unsqueeze(-1)).sum() / mask.sum().clamp(min=1)
    return loss, held_back.sum()


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
    labels: torch.Tensor,
    reference_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-level KL(p_ref || p_theta) over the vocabulary, averaged over answer positions.

    ``reference_labels`` is needed when the reference rows were padded differently (collated
    on their own): answer positions are then matched in row-major order, which padding keeps.
    """
    mask = labels[:, 1:] != IGNORE_INDEX
    reference_mask = mask if reference_labels is None else reference_labels[:, 1:] != IGNORE_INDEX
    ref_logp = F.log_softmax(_upcast(reference_logits[:, :-1, :][reference_mask]), dim=-1)
    logp = F.log_softmax(_upcast(logits[:, :-1, :][mask]), dim=-1)
    if ref_logp.shape != logp.shape:
        raise ValueError(f"reference and policy answer tokens differ: {tuple(ref_logp.shape)} vs {tuple(logp.shape)}")
    if logp.numel() == 0:
        return logits.sum() * 0.0
    return F.kl_div(logp, ref_logp, reduction="batchmean", log_target=True)  # sum_v p_ref (log p_ref - log p)


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
    """Mean squared error over the hidden units of the positions where ``mask`` is set.

    ``hidden`` [B, T, H]; ``target`` [H] (broadcast) or [N, H] for the N masked positions.
    """
    selected = hidden[mask.bool()]
    if selected.numel() == 0:
        return hidden.sum() * 0.0
    return ((selected - target) ** 2).mean()


def answer_lengths(labels: torch.Tensor) -> torch.Tensor:
    """Number of answer tokens per row, [B]."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(-1)
