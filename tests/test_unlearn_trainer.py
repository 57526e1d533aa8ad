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

WEIGHTS = {"pd_weight": 0.7, "retain_weight": 0.4, "kl_weight": 0.9, "npo_beta": 0.2}
METHOD_KEYS = {
    "ga": {},
    "gd": {"retain_dataset": "safeeraser_retain", "retain_weight": 0.4},
    "kl": {"retain_dataset": "safeeraser_retain", "kl_weight": 0.9},
    "po": {"retain_dataset": "safeeraser_retain", "retain_weight": 0.4},
    "npo": {"retain_dataset": "safeeraser_retain", "retain_weight": 0.4, "npo_beta": 0.2},
}


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


def row_token_logps(model, processor, row: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer-token log-probs of one row ([n]) and the full next-token log-softmax at those positions ([n, V])."""
    image = Image.open(row["images"][0]).convert("RGB")
    pixel_values = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    input_ids = torch.tensor([row["input_ids"]])
    logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values=pixel_values).logits[0]
    labels = row["labels"]
    positions = [t for t in range(1, len(labels)) if labels[t] != -100]
    log_softmax = torch.log_softmax(logits.double()[[t - 1 for t in positions]], dim=-1)
    targets = torch.tensor([labels[t] for t in positions])
    return log_softmax[torch.arange(len(positions)), targets], log_softmax


def independent_loss(method: str, trainer, batch_rows: dict[str, list[dict]], reference_model) -> float:
    processor = trainer.processing_class if hasattr(trainer.processing_class, "image_processor") else None
    processor = processor or trainer.data_collator.processor
    model = trainer.model

    def stats(group: str, m):
        return [row_token_logps(m, processor, row) for row in batch_rows[group]]

    def nll(per_row) -> float:
        tokens = torch.cat([lp for lp, _ in per_row])
        return float(-tokens.mean())

    with torch.no_grad():
        forget = stats("forget", model)
        pd_rows = stats("pd", model)
        loss = WEIGHTS["pd_weight"] * nll(pd_rows)
        if method in ("ga", "gd", "kl"):
            loss += -nll(forget)
        if method == "po":
            loss += nll(forget)
        if method in ("gd", "po", "npo"):
            loss += WEIGHTS["retain_weight"] * nll(stats("retain", model))
        if method == "kl":
            policy = torch.cat([ls for _, ls in stats("retain", model)])
            reference = torch.cat([ls for _, ls in stats("retain", reference_model)])
            kl = (reference.exp() * (reference - policy)).sum(-1).mean()
            loss += WEIGHTS["kl_weight"] * float(kl)
        if method == "npo":
            beta = WEIGHTS["npo_beta"]
            reference = stats("forget", reference_model)
            terms = [
                math.log1p(math.exp(beta * float(lp.sum() - ref_lp.sum())))
                for (lp, _), (ref_lp, _) in zip(forget, reference, strict=True)
            ]
            loss += (2 / beta) * sum(terms) / len(terms)
    return loss


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.mark.parametrize("method", ["ga", "gd", "kl", "po", "npo"])
def test_trainer_loss_equals_independent_calculation(method, tiny_model_dir, prepared_dir, tmp_path, reference_model):
    trainer = build_trainer(tiny_model_dir, prepared_dir, tmp_path, method)
    perturb_lora(trainer.model)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    rows = {
        group: [trainer.train_dataset[int(i)][group] for i in batch["row_ids"]] for group in trainer.train_dataset.sets
    }
    if method == "po":  # PO's forget rows carry refusals, not the harmful answers
        answers = {
            trainer.processing_class.decode([t for t in row["labels"] if t >= 0], skip_special_tokens=True)
            for row in rows["forget"]
        }
        assert answers <= set(BUILTIN_REFUSALS)
    loss = trainer.compute_loss(trainer.model, batch)
    expected = independent_loss(method, trainer, rows, reference_model)
    # float32 model, summed sequence log-probs: agreement to 1e-5 relative (and absolute)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_reference_terms_are_zero_at_step_one(fused, tiny_model_dir, prepared_dir, tmp_path):
    """LoRA B starts at zero, so the disabled-adapter reference equals the policy at step 1."""
    for method, term in (("npo", "npo_log_ratio"), ("kl", "retain_kl")):
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
    assert set(trainer.reference_logp_cache) == set(batch["row_ids"].tolist())
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
