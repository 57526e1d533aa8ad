"""Each method's trainer loss on a fixed batch equals an independent calculation.

The independent side runs the model one row at a time (its own image preprocessing, its own
log-softmax and shifting) and a freshly loaded copy of the base model as the reference, then
applies the methods' formulas (docs/training.md) directly. The trainer side is the real LLaMA-Factory setup:
parsed arguments, LLaMA-Factory's data pipeline and LoRA model, the stacked batch.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import build_unlearning_trainer
from PIL import Image

from llamafactory_safeeraser.data.refusals import BUILTIN_REFUSALS
from llamafactory_safeeraser.unlearn import losses

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
    keys = dict(unlearn_method=method, pd_dataset="safeeraser_pd", pd_weight=WEIGHTS["pd_weight"], max_samples=8)
    return build_unlearning_trainer(
        tiny_model_dir, prepared_dir, tmp_path / "out", **{**keys, **METHOD_KEYS[method], **overrides}
    )


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


def answer_targets(row: dict) -> list[int]:
    """Positions t whose label is an answer token (predicted by the logits at t - 1)."""
    return [t for t in range(1, len(row["labels"])) if row["labels"][t] != -100]


def row_token_logps(model, processor, row: dict) -> torch.Tensor:
    """Answer-token log-probs of one row, [n]."""
    logits = row_forward(model, processor, row).logits[0]
    positions = answer_targets(row)
    log_softmax = torch.log_softmax(logits.double()[[t - 1 for t in positions]], dim=-1)
    return log_softmax[torch.arange(len(positions)), torch.tensor([row["labels"][t] for t in positions])]


def independent_loss(method: str, trainer, batch_rows: dict[str, list[dict]], reference_model) -> float:
    """The formulas, each term a mean over rows of a per-row quantity (the reference: one row per device)."""
    processor = trainer.data_collator.processor
    model = trainer.model

    def mean(values) -> float:
        values = [float(v) for v in values]
        return sum(values) / len(values)

    def logps(row_set: str, m=model) -> list[torch.Tensor]:
        return [row_token_logps(m, processor, row) for row in batch_rows[row_set]]

    def nll(row_set: str) -> float:  # each row's mean answer-token NLL, averaged over rows
        return mean(-lp.mean() for lp in logps(row_set))

    def sequence_logps(row_set: str, m) -> list[float]:
        return [float(lp.sum()) for lp in logps(row_set, m)]

    with torch.no_grad():
        loss = WEIGHTS["pd_weight"] * nll("pd")
        if method in ("gd", "npo", "simnpo", "idkdpo"):
            loss += WEIGHTS["retain_weight"] * nll("retain")
        if method in ("ga", "gd", "kl"):
            loss += -nll("forget")
        if method == "po":  # the reference's joint token mean over each refusal row and its retain row
            w = WEIGHTS["retain_weight"]
            pairs = zip(logps("refusal"), logps("retain"), strict=True)
            loss += mean((-r.sum() - w * k.sum()) / (len(r) + len(k)) for r, k in pairs)
        if method == "kl":  # KL(p_ref || p) at every position of the retain row (image, prompt, answer)
            per_row = []
            for row in batch_rows["retain"]:
                policy = torch.log_softmax(row_forward(model, processor, row).logits[0].double(), -1)
                reference = torch.log_softmax(row_forward(reference_model, processor, row).logits[0].double(), -1)
                per_row.append((reference.exp() * (reference - policy)).sum(-1).mean())
            loss += WEIGHTS["kl_weight"] * mean(per_row)
        if method == "npo":
            beta = WEIGHTS["npo_beta"]
            ratios = [
                p - r
                for p, r in zip(sequence_logps("forget", model), sequence_logps("forget", reference_model), strict=True)
            ]
            loss += (2 / beta) * mean(math.log1p(math.exp(beta * x)) for x in ratios)
        if method == "simnpo":
            beta, gamma = WEIGHTS["simnpo_beta"], WEIGHTS["simnpo_gamma"]
            normalised = [float(lp.sum()) / len(lp) for lp in logps("forget")]
            loss += (2 / beta) * mean(math.log1p(math.exp(beta * x + gamma)) for x in normalised)
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
            loss += mean(math.log1p(math.exp(-beta * m)) for m in margins)  # -log sigmoid(beta m)
        if method == "rmu":  # hidden states at the positions holding answer tokens, per row
            layer = WEIGHTS["rmu_layer"] + 1  # hidden_states[0]: embeddings
            hidden = model.config.text_config.hidden_size
            direction = torch.rand(hidden, generator=torch.Generator().manual_seed(233))
            target = WEIGHTS["rmu_steering_coeff"] * direction / direction.norm()

            def answer_hidden(m, row):
                answer = [t for t, label in enumerate(row["labels"]) if label != -100]
                return row_forward(m, processor, row).hidden_states[layer][0][answer]

            loss += mean(((answer_hidden(model, r) - target) ** 2).mean() for r in batch_rows["forget"])
            loss += WEIGHTS["rmu_alpha"] * mean(
                ((answer_hidden(model, r) - answer_hidden(reference_model, r)) ** 2).mean()
                for r in batch_rows["retain"]
            )
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
    items = [trainer.train_dataset[int(i)] for i in batch["row_ids"]]
    rows = {row_set: [item[row_set] for item in items] for row_set in trainer.train_dataset.row_sets}
    if method in ("po", "idkdpo"):  # the refusal twins of the forget rows: same prompts, refusal answers
        answers = {
            trainer.processing_class.decode([t for t in row["labels"] if t >= 0], skip_special_tokens=True)
            for row in rows["refusal"]
        }
        assert answers <= set(BUILTIN_REFUSALS)
        if "forget" in rows:  # the whole prompt (system, image tokens, question) is the forget row's
            prompts = [[r["input_ids"][:t] for t in answer_targets(r)[:1]] for r in rows["refusal"]]
            assert prompts == [[r["input_ids"][:t] for t in answer_targets(r)[:1]] for r in rows["forget"]]
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
        _, terms = trainer.method_loss(trainer.forward_sets(trainer.model, dict(batch)))
        assert abs(terms[term].item()) < 1e-5, (method, terms)
        if method == "npo":  # (2/beta) * ln 2 exactly when the log-ratio is 0
            assert terms["npo_loss"].item() == pytest.approx(2 / WEIGHTS["npo_beta"] * math.log(2), abs=1e-4)


@pytest.mark.parametrize("method", ["kl", "npo"])
def test_the_reference_is_the_starting_model_after_training(
    method, tiny_model_dir, prepared_dir, tmp_path, reference_model
):
    """After real steps (LoRA and a fully trained projector moved), the disabled-adapter reference still gives
    the freshly loaded base model's outputs, and the policy does not."""
    trainer = build_trainer(
        tiny_model_dir,
        prepared_dir,
        tmp_path,
        method,
        additional_target="multi_modal_projector",
        max_steps=3,
        learning_rate=5.0e-2,
    )
    trainer.train()
    trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    view = trainer.forward_sets(trainer.model, dict(batch))
    row_set = trainer.reference_row_sets[0]
    with torch.no_grad():
        outputs, inputs = trainer.reference_outputs(view, row_set)
        model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
        expected = reference_model(**model_inputs).logits
        policy = trainer.model(**model_inputs).logits
    real = inputs["attention_mask"].bool()
    assert torch.allclose(outputs.logits[real], expected[real], atol=1e-5)
    assert (policy[real] - expected[real]).abs().max() > 1e-2  # the policy did move away from it
    if method == "npo":  # the reference log-probs cached during training are the base model's too
        assert trainer.reference_logp_cache
        cached = trainer.reference_sequence_logps(view, "forget")
        fresh = losses.sequence_logps(expected, inputs["labels"])
        assert torch.allclose(cached, fresh, atol=1e-4)


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
    first = trainer.reference_sequence_logps(trainer.forward_sets(trainer.model, dict(batch)), "forget")
    assert set(trainer.reference_logp_cache) == {("forget", row) for row in batch["row_ids"].tolist()}
    perturb_lora(trainer.model)  # the policy moves; cached reference values must not
    calls = []
    trainer.reference_model_context = lambda model: calls.append(1)  # any reference forward would fail now
    second = trainer.reference_sequence_logps(trainer.forward_sets(trainer.model, dict(batch)), "forget")
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
