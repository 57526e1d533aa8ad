"""Each method's trainer loss on a fixed batch equals an independent calculation.

The independent side runs the model one row at a time (its own image preprocessing, its own
log-softmax and shifting) and a freshly loaded copy of the base model as the reference, then
applies SPEC section 2's formulas directly. The trainer side is the real LLaMA-Factory setup:
parsed arguments, LLaMA-Factory's data pipeline and LoRA model, the stacked batch.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import base_train_config
from PIL import Image

from llamafactory_safeeraser import lmf
from llamafactory_safeeraser.refusals import BUILTIN_REFUSALS
from llamafactory_safeeraser.unlearn.trainer import UnlearningBatch
from llamafactory_safeeraser.unlearn.workflow import create_unlearning_trainer

WEIGHTS = {
    "pd_weight": 0.7,
    "retain_weight": 0.4,
    "kl_weight": 0.9,
    "npo_beta": 0.2,
    "simnpo_beta": 2.0,
    "simnpo_gamma": 0.5,
    "pref_beta": 0.3,
    "rmu_layer": 0,
    "rmu_steering_coeff": 3.0,
    "rmu_alpha": 5.0,
}
RETAIN = {"retain_dataset": "safeeraser_retain", "retain_weight": 0.4}
METHOD_KEYS = {
    "ga": {},
    "gd": RETAIN,
    "kl": {"retain_dataset": "safeeraser_retain", "kl_weight": 0.9},
    "po": RETAIN,
    "npo": {**RETAIN, "npo_beta": 0.2},
    "simnpo": {**RETAIN, "simnpo_beta": 2.0, "simnpo_gamma": 0.5},
    "idkdpo": {**RETAIN, "pref_beta": 0.3},
    "rmu": {"retain_dataset": "safeeraser_retain", "rmu_layer": 0, "rmu_steering_coeff": 3.0, "rmu_alpha": 5.0},
}
METHODS = sorted(METHOD_KEYS)


def build_trainer(tiny_model_dir, prepared_dir, tmp_path, method: str, **overrides):
    config = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="unlearn",
        unlearn_method=method,
        dataset="safeeraser_forget",
        pd_dataset="safeeraser_pd",
        pd_weight=WEIGHTS["pd_weight"],
        forget_nll_guard="off",
        output_dir=str(tmp_path / "out"),
        max_samples=8,
        **METHOD_KEYS[method],
    )
    config.update(overrides)
    model_args, data_args, training_args, finetuning_args, _ = lmf.parse_train_args(config)
    return create_unlearning_trainer(model_args, data_args, training_args, finetuning_args)


def perturb_lora(model: torch.nn.Module, seed: int = 1) -> None:
    """LoRA B starts at zero (policy == reference); move it so that the reference matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)


def row_forward(model, processor, row: dict):
    """One row through the model on its own: outputs with hidden states (no padding, own image preprocessing)."""
    image = Image.open(row["images"][0]).convert("RGB")
    pixel_values = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    input_ids = torch.tensor([row["input_ids"]])
    return model(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        pixel_values=pixel_values,
        output_hidden_states=True,
    )


def row_token_logps(model, processor, row: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer-token log-probs of one row ([n]) and the full next-token log-softmax at those positions ([n, V])."""
    logits = row_forward(model, processor, row).logits[0]
    labels = row["labels"]
    positions = [t for t in range(1, len(labels)) if labels[t] != -100]
    log_softmax = torch.log_softmax(logits.double()[[t - 1 for t in positions]], dim=-1)
    targets = torch.tensor([labels[t] for t in positions])
    return log_softmax[torch.arange(len(positions)), targets], log_softmax


def independent_loss(method: str, trainer, batch_rows: dict[str, list[dict]], reference_model) -> float:
    processor = trainer.data_collator.processor
    model = trainer.model

    def stats(group: str, m):
        return [row_token_logps(m, processor, row) for row in batch_rows[group]]

    def nll(per_row) -> float:
        tokens = torch.cat([lp for lp, _ in per_row])
        return float(-tokens.mean())

    def sequence_logps(group: str, m) -> list[float]:
        return [float(lp.sum()) for lp, _ in stats(group, m)]

    with torch.no_grad():
        loss = WEIGHTS["pd_weight"] * nll(stats("pd", model))
        if method in ("gd", "po", "npo", "simnpo", "idkdpo"):
            loss += WEIGHTS["retain_weight"] * nll(stats("retain", model))
        if method in ("ga", "gd", "kl"):
            loss += -nll(stats("forget", model))
        if method == "po":
            loss += nll(stats("refusal", model))
        if method == "kl":
            policy = torch.cat([ls for _, ls in stats("retain", model)])
            reference = torch.cat([ls for _, ls in stats("retain", reference_model)])
            kl = (reference.exp() * (reference - policy)).sum(-1).mean()
            loss += WEIGHTS["kl_weight"] * float(kl)
        if method == "npo":
            beta = WEIGHTS["npo_beta"]
            ratios = [
                p - r
                for p, r in zip(sequence_logps("forget", model), sequence_logps("forget", reference_model), strict=True)
            ]
            loss += (2 / beta) * sum(math.log1p(math.exp(beta * x)) for x in ratios) / len(ratios)
        if method == "simnpo":
            beta, gamma = WEIGHTS["simnpo_beta"], WEIGHTS["simnpo_gamma"]
            normalised = [float(lp.sum()) / len(lp) for lp, _ in stats("forget", model)]
            loss += (2 / beta) * sum(math.log1p(math.exp(beta * x + gamma)) for x in normalised) / len(normalised)
        if method == "idkdpo":
            beta = WEIGHTS["pref_beta"]
            chosen = [
                p - r
                for p, r in zip(
                    sequence_logps("refusal", model), sequence_logps("refusal", reference_model), strict=True
                )
            ]
            rejected = [
                p - r
                for p, r in zip(sequence_logps("forget", model), sequence_logps("forget", reference_model), strict=True)
            ]
            margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
            loss += sum(math.log1p(math.exp(-beta * m)) for m in margins) / len(margins)  # -log sigmoid(beta m)
        if method == "rmu":
            layer = WEIGHTS["rmu_layer"] + 1  # hidden_states[0]: embeddings
            hidden = model.config.text_config.hidden_size
            direction = torch.rand(hidden, generator=torch.Generator().manual_seed(233))
            target = WEIGHTS["rmu_steering_coeff"] * direction / direction.norm()
            forget = torch.cat([row_forward(model, processor, r).hidden_states[layer][0] for r in batch_rows["forget"]])
            loss += float(((forget - target) ** 2).mean())
            policy = torch.cat([row_forward(model, processor, r).hidden_states[layer][0] for r in batch_rows["retain"]])
            ref = torch.cat(
                [row_forward(reference_model, processor, r).hidden_states[layer][0] for r in batch_rows["retain"]]
            )
            loss += WEIGHTS["rmu_alpha"] * float(((policy - ref) ** 2).mean())
    return loss


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.mark.parametrize("method", METHODS)
def test_trainer_loss_equals_independent_calculation(method, tiny_model_dir, prepared_dir, tmp_path, reference_model):
    trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path, method)
    perturb_lora(trainer.model)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    rows = {
        group: [trainer.train_dataset[int(i)][group] for i in batch["row_ids"]] for group in trainer.train_dataset.sets
    }
    if method in ("po", "idkdpo"):  # the refusal twins of the forget rows: same prompts, refusal answers
        answers = {
            trainer.processing_class.decode([t for t in row["labels"] if t >= 0], skip_special_tokens=True)
            for row in rows["refusal"]
        }
        assert answers <= set(BUILTIN_REFUSALS)
        if "forget" in rows:
            assert [r["input_ids"][:20] for r in rows["refusal"]] == [r["input_ids"][:20] for r in rows["forget"]]
    loss = trainer.compute_loss(trainer.model, batch)
    expected = independent_loss(method, trainer, rows, reference_model)
    # float32 model, summed sequence log-probs: agreement to 1e-5 relative (and absolute)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_reference_terms_are_zero_at_step_one(fused, tiny_model_dir, prepared_dir, tmp_path):
    """LoRA B starts at zero, so the disabled-adapter reference equals the policy at step 1."""
    for method, term in (
        ("npo", "npo_log_ratio"),
        ("kl", "retain_kl"),
        ("idkdpo", "dpo_margin"),
        ("rmu", "rmu_retain"),
    ):
        trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path / method, method, fused_forward=fused)
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        _, terms = trainer.method_loss(UnlearningBatch(trainer, trainer.model, dict(batch)))
        assert abs(terms[term].item()) < 1e-5, (method, terms)
        if method == "npo":  # (2/beta) * ln 2 exactly when the log-ratio is 0
            assert terms["npo_loss"].item() == pytest.approx(2 / WEIGHTS["npo_beta"] * math.log(2), abs=1e-4)


def test_fused_and_separate_passes_give_the_same_loss(tiny_model_dir, prepared_dir, tmp_path):
    values = []
    for fused in (True, False):
        trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path / str(fused), "npo", fused_forward=fused)
        perturb_lora(trainer.model)
        batch = next(iter(trainer.get_train_dataloader()))
        values.append(trainer.compute_loss(trainer.model, batch).item())
    assert values[0] == pytest.approx(values[1], abs=1e-5)


def test_npo_reference_cache_is_filled_once_and_reused(tiny_model_dir, prepared_dir, tmp_path):
    trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path, "npo")
    batch = next(iter(trainer.get_train_dataloader()))
    first = UnlearningBatch(trainer, trainer.model, dict(batch)).reference_sequence_logps("forget")
    assert set(trainer.reference_logp_cache) == {("forget", row) for row in batch["row_ids"].tolist()}
    perturb_lora(trainer.model)  # the policy moves; cached reference values must not
    calls = []
    trainer.reference_model_context = lambda model: calls.append(1)  # any reference forward would fail now
    second = UnlearningBatch(trainer, trainer.model, dict(batch)).reference_sequence_logps("forget")
    assert not calls
    assert torch.allclose(first, second)


def test_non_finite_loss_stops_with_a_clear_message(tiny_model_dir, prepared_dir, tmp_path):
    from llamafactory_safeeraser.unlearn.trainer import NonFiniteLossError

    trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path, "gd")
    with torch.no_grad():
        next(p for n, p in trainer.model.named_parameters() if "lora_B" in n).fill_(float("nan"))
    batch = next(iter(trainer.get_train_dataloader()))
    with pytest.raises(NonFiniteLossError, match="stopping before the update"):
        trainer.compute_loss(trainer.model, batch)


def test_rmu_trains_only_the_steered_layer_and_the_two_below(tiny_model_dir, prepared_dir, tmp_path):
    trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path, "rmu")  # rmu_layer 0: only layer 0 trains
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.0." in name and "language_model" in name for name in trainable)
    assert any("lora_B" in name for name in trainable)
