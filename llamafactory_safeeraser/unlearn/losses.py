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


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every next answer token, [B, T-1], and the answer mask, [B, T-1]."""
    shifted_logits = logits[:, :-1, :].float()  # upcast as transformers' own LM loss does
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


def answer_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token NLL over all answer tokens of the batch (the usual LM loss)."""
    logps, mask = token_logps(logits, labels)
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token NLL of each sequence's answer, [B]."""
    logps, mask = token_logps(logits, labels)
    return -(logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(y|x): summed log-probability of each sequence's answer, [B]."""
    logps, mask = token_logps(logits, labels)
    return (logps * mask).sum(-1)


def guarded_ascent_loss(
    logits: torch.Tensor, labels: torch.Tensor, nll_ceiling: float = math.inf
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-ascent term -NLL(forget), bounded per sequence.

    Sequences whose answer NLL already exceeds ``nll_ceiling`` stop contributing (their tokens
    get zero gradient): ascent is unbounded, and pushing a forgotten answer further only
    degrades everything else. Returns the loss and the number of sequences held back.
    With the default ceiling (infinity) this is exactly ``-answer_nll``.
    """
    logps, mask = token_logps(logits, labels)
    per_sequence = -(logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    active = (per_sequence.detach() < nll_ceiling).unsqueeze(-1)
    loss = (logps * mask * active).sum() / mask.sum().clamp(min=1)
    return loss, (~active).sum()


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
    ref_logp = F.log_softmax(reference_logits[:, :-1, :][reference_mask].float(), dim=-1)
    logp = F.log_softmax(logits[:, :-1, :][mask].float(), dim=-1)
    if ref_logp.shape != logp.shape:
        raise ValueError(f"reference and policy answer tokens differ: {tuple(ref_logp.shape)} vs {tuple(logp.shape)}")
    if logp.numel() == 0:
        return logits.sum() * 0.0
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()


def npo_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024): (2/beta) * mean log(1 + (pi_theta / pi_ref)^beta).

    log(1 + r^beta) = softplus(beta * log r), computed stably.
    """
    return (2.0 / beta) * F.softplus(beta * (policy_logps - reference_logps)).mean()
