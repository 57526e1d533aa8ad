"""Tiny models built offline: complete checkpoints that load, generate, train and are deterministic."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import BIN, base_train_config, llamafactory_train, log_history, run_cli
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from llamafactory_safeeraser.offline.tiny_models import write_tiny_model
from llamafactory_safeeraser.offline.tiny_models.llava import LLAVA_SYSTEM


def test_tiny_llava_round_trip(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 150_000 < n_params < 500_000
    tokenizer = processor.tokenizer
    for token in ("<unk>", "<s>", "</s>", "<pad>", "<image>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == "<unk>"
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>")
    text = "USER: <image>\nWhat shape is the main object in this image? ASSISTANT:"
    inputs = processor(images=[Image.new("RGB", (32, 32), (200, 10, 10))], text=[text], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16  # 4x4 patches, CLS dropped
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 6 or tokenizer.eos_token_id in out[0].tolist()
    # the chat template renders LLaMA-Factory's `llava` template
    rendered = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}], tokenize=False
    )
    assert rendered == f"{LLAVA_SYSTEM}USER: <image>\nHi? ASSISTANT:"


def test_builder_is_deterministic_per_seed(tmp_path):
    write_tiny_model(tmp_path / "a", seed=3)
    write_tiny_model(tmp_path / "b", seed=3)
    write_tiny_model(tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a/model.safetensors").read_bytes() != (tmp_path / "c/model.safetensors").read_bytes()
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "c/tokenizer.json").read_bytes()


def test_processor_carries_what_llamafactory_needs(tiny_model_dir):
    config = json.loads((tiny_model_dir / "processor_config.json").read_text())
    assert config["patch_size"] == 8
    assert config["vision_feature_select_strategy"] == "default"
    assert config["num_additional_image_tokens"] == 1


def test_small_size_is_big_enough_for_benchmarks(tmp_path):
    proc = run_cli([str(BIN / "safeeraser"), "make-tiny-model", "--size", "small", "--out", str(tmp_path / "s")])
    assert proc.returncode == 0, proc.stderr
    count = int(proc.stdout.split(" with ")[1].split(" parameters")[0].replace(",", ""))
    assert count >= 10_000_000
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "s")
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.slow
def test_tiny_model_trains_under_llamafactory_cli(tiny_model_dir, prepared_dir, tmp_path):
    """A real `llamafactory-cli train` SFT run on the tiny model lowers its loss and saves an adapter."""
    config = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="sft",
        dataset="safeeraser_retain",
        max_samples=8,
        num_train_epochs=6.0,
        learning_rate=5.0e-3,
    )
    out = llamafactory_train(config, tmp_path, "sft")
    losses = [e["loss"] for e in log_history(out) if "loss" in e]
    assert losses[-1] < losses[0] - 0.5
    from peft import PeftModel

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(base, out)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in tuned.named_parameters())
    # the saved adapter is what training changed: it moves the model's outputs
    base_again = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    inputs = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        assert not torch.allclose(tuned.eval()(**inputs).logits, base_again(**inputs).logits, atol=1e-4)
