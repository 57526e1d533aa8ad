"""The pure loss functions against explicit per-token loops written here."""

from __future__ import annotations

import math

import pytest
import torch

from llamafactory_safeeraser.unlearn import losses

IGNORE = -100


def make_batch(seed: int = 0, batch: int = 3, length: int = 7, vocab: int = 11):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, vocab, (batch, length), generator=gen)
    labels[0, :3] = IGNORE  # prompt
    labels[1, :2] = IGNORE
    labels[1, -2:] = IGNORE  # padding
    labels[2, :5] = IGNORE
    return logits, labels


def loop_token_logps(logits, labels):
    """[(row, logp)] for every answer token, by explicit loops over positions."""
    out = []
    for b in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            if labels[b, t] != IGNORE:
                logp = logits[b, t - 1] - torch.logsumexp(logits[b, t - 1], dim=0)
                out.append((b, float(logp[labels[b, t]])))
    return out


def row_mean_of(tokens, rows, value=lambda lp: lp) -> float:
    """Mean over rows of each row's mean of value(token log-prob)."""
    means = []
    for b in rows:
        row = [value(lp) for r, lp in tokens if r == b]
        means.append(sum(row) / len(row))
    return sum(means) / len(means)


def test_answer_nll_is_mean_over_rows_of_each_rows_token_mean():
    logits, labels = make_batch()  # rows of 3, 4 and 1 answer tokens
    tokens = loop_token_logps(logits, labels)
    expected = row_mean_of(tokens, range(3), lambda lp: -lp)
    assert losses.answer_nll(logits, labels).item() == pytest.approx(expected, abs=1e-10)
    token_mean = -sum(lp for _, lp in tokens) / len(tokens)  # what a batch-wide token mean would give
    assert abs(expected - token_mean) > 1e-3


def test_sequence_logps_and_nll_per_row():
    logits, labels = make_batch(seed=1)
    tokens = loop_token_logps(logits, labels)
    for b in range(labels.shape[0]):
        row = [lp for r, lp in tokens if r == b]
        assert losses.sequence_logps(logits, labels)[b].item() == pytest.approx(sum(row), abs=1e-10)
        assert losses.sequence_nll(logits, labels)[b].item() == pytest.approx(-sum(row) / len(row), abs=1e-10)


def test_guarded_ascent_without_ceiling_is_minus_nll_and_holds_rows_above_it():
    logits, labels = make_batch(seed=2)
    loss, held = losses.guarded_ascent_loss(logits, labels)
    assert loss.item() == pytest.approx(-losses.answer_nll(logits, labels).item(), abs=1e-10)
    assert held.item() == 0

    per_row = losses.sequence_nll(logits, labels)
    ceiling = float(per_row.median())  # rows at or above the median are held back
    tokens = loop_token_logps(logits, labels)
    active = {b for b in range(labels.shape[0]) if per_row[b] < ceiling}
    expected = (
        row_mean_of(tokens, sorted(active)) * len(active)
        - row_mean_of(tokens, sorted(set(range(3)) - active)) * (3 - len(active))
    ) / 3
    clamped, held = losses.guarded_ascent_loss(logits, labels, ceiling)
    assert clamped.item() == pytest.approx(expected, abs=1e-10)
    assert held.item() == labels.shape[0] - len(active) > 0

    # active rows ascend the NLL, held-back rows descend it: opposite gradients to plain ascent
    plain_logits = logits.clone().requires_grad_(True)
    losses.guarded_ascent_loss(plain_logits, labels)[0].backward()
    guarded_logits = logits.clone().requires_grad_(True)
    losses.guarded_ascent_loss(guarded_logits, labels, ceiling)[0].backward()
    for b in range(labels.shape[0]):
        factor = 1.0 if b in active else -1.0
        assert torch.allclose(guarded_logits.grad[b], factor * plain_logits.grad[b])


def loop_kl(ref_logits, logits, positions) -> float:
    """Mean over rows of each row's mean KL(p_ref || p) over its selected positions, by loops."""
    per_row = []
    for b in range(positions.shape[0]):
        terms = []
        for t in range(positions.shape[1]):
            if positions[b, t]:
                p_ref = torch.softmax(ref_logits[b, t], 0)
                p = torch.softmax(logits[b, t], 0)
                terms.append(float((p_ref * (p_ref.log() - p.log())).sum()))
        per_row.append(sum(terms) / len(terms))
    return sum(per_row) / len(per_row)


def test_kl_divergence_matches_definition_and_is_zero_for_same_model():
    ref_logits, labels = make_batch(seed=3)
    logits, _ = make_batch(seed=4)
    answer = losses.answer_positions(labels)
    for b in range(3):  # position t predicts token t+1
        assert answer[b].tolist() == [bool(labels[b, t + 1] != IGNORE) for t in range(6)] + [False]
    every = torch.ones_like(labels, dtype=torch.bool)
    every[1, -2:] = False  # padding
    for positions in (answer, every):
        expected = loop_kl(ref_logits, logits, positions)
        assert losses.kl_divergence(ref_logits, logits, positions).item() == pytest.approx(expected, abs=1e-10)
        assert losses.kl_divergence(logits, logits, positions).item() == pytest.approx(0.0, abs=1e-12)
    # over every position the image/prompt positions count too: a different number
    assert losses.kl_divergence(ref_logits, logits, every).item() != pytest.approx(
        losses.kl_divergence(ref_logits, logits, answer).item(), abs=1e-3
    )


def test_kl_divergence_with_differently_padded_reference():
    ref_logits, labels = make_batch(seed=5)
    logits, _ = make_batch(seed=6)
    # the same rows with 4 extra padding positions on the right
    pad = 4
    ref_padded = torch.cat([ref_logits, torch.randn(3, pad, ref_logits.shape[-1], dtype=ref_logits.dtype)], dim=1)
    labels_padded = torch.cat([labels, torch.full((3, pad), IGNORE)], dim=1)
    positions = losses.answer_positions(labels)
    direct = losses.kl_divergence(ref_logits, logits, positions)
    via_padded = losses.kl_divergence(ref_padded, logits, positions, losses.answer_positions(labels_padded))
    assert via_padded.item() == pytest.approx(direct.item(), abs=1e-12)


def test_joint_nll_is_one_token_mean_per_pair():
    logits, labels = make_batch(seed=7)
    other_logits, other_labels = make_batch(seed=8, length=9)
    mine, theirs = loop_token_logps(logits, labels), loop_token_logps(other_logits, other_labels)
    for weight in (1.0, 0.4):
        expected = []
        for b in range(3):
            a = [lp for r, lp in mine if r == b]
            o = [lp for r, lp in theirs if r == b]
            expected.append((-sum(a) - weight * sum(o)) / (len(a) + len(o)))
        value = losses.joint_nll(
            *losses.token_logps(logits, labels), *losses.token_logps(other_logits, other_labels), weight
        )
        assert value.item() == pytest.approx(sum(expected) / 3, abs=1e-10)


def test_npo_loss_matches_formula():
    policy = torch.tensor([-12.0, -3.5, -40.0], dtype=torch.float64)
    reference = torch.tensor([-10.0, -5.0, -41.0], dtype=torch.float64)
    beta = 0.1
    expected = (
        sum(math.log(1 + math.exp(p - r) ** beta) for p, r in zip(policy.tolist(), reference.tolist(), strict=True))
        * (2 / beta)
        / 3
    )
    assert losses.npo_loss(policy, reference, beta).item() == pytest.approx(expected, rel=1e-12)
    # at the start (policy == reference) the loss is (2/beta) * ln 2
    assert losses.npo_loss(reference, reference, beta).item() == pytest.approx(2 / beta * math.log(2), rel=1e-12)


def test_simnpo_loss_matches_formula():
    logps = torch.tensor([-12.0, -3.5, -40.0], dtype=torch.float64)
    lengths = torch.tensor([6, 2, 20])
    beta, gamma = 2.5, 0.3
    expected = (
        sum(
            -math.log(1 / (1 + math.exp(beta * lp / n + gamma)))
            for lp, n in zip(logps.tolist(), lengths.tolist(), strict=True)
        )
        * (2 / beta)
        / 3
    )  # -(2/beta) log sigmoid(-(beta/|y|) log pi - gamma)
    assert losses.simnpo_loss(logps, lengths, beta, gamma).item() == pytest.approx(expected, rel=1e-12)


def test_dpo_loss_matches_formula_and_rewards_the_preferred_answer():
    chosen, rejected = torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -2.0])
    ref_chosen, ref_rejected = torch.tensor([-6.0, -7.5]), torch.tensor([-6.5, -3.0])
    beta = 0.1
    margins = [(c - rc) - (r - rr) for c, rc, r, rr in zip(chosen, ref_chosen, rejected, ref_rejected, strict=True)]
    expected = sum(math.log(1 + math.exp(-beta * float(m))) for m in margins) / 2
    assert losses.dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta).item() == pytest.approx(expected, rel=1e-6)
    # at the start (policy == reference) the loss is ln 2
    assert losses.dpo_loss(chosen, rejected, chosen, rejected, beta).item() == pytest.approx(math.log(2), rel=1e-6)


def test_masked_mse_averages_per_row_over_masked_positions_and_units():
    hidden = torch.arange(2 * 3 * 4, dtype=torch.float64).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    target = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    row0 = [hidden[0, 0], hidden[0, 1]]
    row1 = [hidden[1, 0]]
    per_row = [sum(float(((h - target) ** 2).mean()) for h in row) / len(row) for row in (row0, row1)]
    assert losses.masked_mse(hidden, target, mask).item() == pytest.approx(sum(per_row) / 2)
    per_position = torch.stack(row0 + row1) + 1.0
    assert losses.masked_mse(hidden, per_position, mask).item() == pytest.approx(1.0)
    assert losses.answer_lengths(torch.tensor([[-100, 5, 6, -100], [-100, -100, -100, 9]])).tolist() == [2, 1]


def reductions(logits, labels, ref_logits):
    """Every reduction of this module on one batch, as scalar losses."""
    logps, mask = losses.token_logps(logits, labels)
    positions = losses.answer_positions(labels)
    hidden = logits[..., :4]
    return {
        "nll": losses.mean_nll(logps, mask),
        "guarded": losses.guarded_ascent(logps, mask, 2.6)[0],
        "joint": losses.joint_nll(logps, mask, *losses.token_logps(ref_logits, labels), 0.5),
        "kl": losses.kl_divergence(ref_logits, logits, positions),
        "kl_all": losses.kl_divergence(ref_logits, logits, torch.ones_like(positions)),
        "npo": losses.npo_loss(losses.summed_logps(logps, mask), torch.full((labels.shape[0],), -9.0), 0.1),
        "simnpo": losses.simnpo_loss(losses.summed_logps(logps, mask), losses.answer_lengths(labels), 2.5, 0.0),
        "mse": losses.masked_mse(hidden, torch.ones(4, dtype=hidden.dtype), labels != IGNORE),
    }


def test_every_reduction_gives_the_same_gradient_for_any_split_of_the_batch():
    """A batch of rows with different answer lengths, whole vs one row per micro-batch (averaged, as the
    Trainer does with gradient accumulation and DDP does across processes)."""
    logits, labels = make_batch(seed=9, batch=4, length=8)
    labels[3, :6] = IGNORE  # answers of 5, 4, 3 and 2 tokens
    ref_logits, _ = make_batch(seed=10, batch=4, length=8)
    whole = logits.clone().requires_grad_(True)
    split = logits.clone().requires_grad_(True)
    for name in reductions(logits, labels, ref_logits):
        whole.grad = split.grad = None
        reductions(whole, labels, ref_logits)[name].backward()
        for rows in ([0, 1], [2, 3]):  # two micro-batches of two rows
            part = reductions(split[rows], labels[rows], ref_logits[rows])[name] / 2
            part.backward()
        assert torch.allclose(whole.grad, split.grad, atol=1e-12), name
