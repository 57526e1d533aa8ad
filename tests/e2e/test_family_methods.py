"""The method matrix: every registered unlearning method, with and without PD, through `llamafactory-cli train` on
the tiny model of every family in FAMILY_TABLE (the `families` tier: ``scripts/test.sh families``; the default
suite trains one method per family, tests/e2e/test_model_families.py).

Cells come from the family table and the method registry, so a new family or method joins by being registered.
Whether a method needs ``retain_dataset`` is asked of the stage's own parser, not listed here. Each cell trains
two steps and checks what a run that trained the right tokens shows: every logged loss term finite, the PD term
logged exactly when PD is on, and the saved adapter changing the model's output on the family's own prompt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import base_train_config, llamafactory_train, log_history
from PIL import Image

from llamafactory_safeeraser.offline.tiny_models.sizes import FAMILY_TABLE
from llamafactory_safeeraser.unlearn.registry import method_names

pytestmark = [pytest.mark.slow, pytest.mark.families]

CELLS = [(family, method, pd) for family in FAMILY_TABLE for method in method_names() for pd in (False, True)]


def cell_config(family: str, model_dir: Path, prepared_dir: Path, method: str, pd: bool, output_dir: Path) -> dict:
    """Two steps of ``method`` on the family's tiny model; ``retain_dataset`` where the stage's parser asks for it."""
    from llamafactory_safeeraser.hook.stage import parse_train_args

    config = base_train_config(
        model_dir,
        prepared_dir,
        template=FAMILY_TABLE[family].template,
        stage="unlearn",
        unlearn_method=method,
        dataset="safeeraser_forget",
        max_samples=4,
        learning_rate=1.0e-2,
        output_dir=str(output_dir),
    )
    if pd:
        config["pd_dataset"] = "safeeraser_pd"
    try:
        parse_train_args(dict(config))
    except ValueError as err:
        if "needs `retain_dataset`" not in str(err):
            raise
        config["retain_dataset"] = "safeeraser_retain"
    return config


@pytest.mark.parametrize(
    ("family", "method", "pd"), CELLS, ids=[f"{f}-{m}-{'pd' if p else 'plain'}" for f, m, p in CELLS]
)
def test_method_trains_on_family(family, method, pd, family_model_dir, prepared_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from llamafactory_safeeraser.data.user_turn import IMAGE_PLACEHOLDER
    from llamafactory_safeeraser.lmeval_task.documents import render_prompt

    model_dir = family_model_dir(family)
    config = cell_config(family, model_dir, prepared_dir, method, pd, tmp_path / "out")
    output = llamafactory_train(config, tmp_path, "run")

    history = [entry for entry in log_history(output) if "loss" in entry]
    assert len(history) == 2  # 4 forget rows, batches of 2
    for entry in history:
        assert all(math.isfinite(value) for key, value in entry.items() if isinstance(value, float)), entry
        assert ("pd_nll" in entry) == pd
    assert json.loads((output / "adapter_config.json").read_text())["peft_type"] == "LORA"

    # the adapter changes what the model says on the family's evaluation prompt (the vision path included)
    processor = AutoProcessor.from_pretrained(model_dir)
    image_token_id = AutoConfig.from_pretrained(model_dir).image_token_id
    image_token = processor.tokenizer.decode([image_token_id], skip_special_tokens=False)
    prompt = render_prompt(FAMILY_TABLE[family].template, "What is shown?", str(model_dir))
    text = prompt.replace(IMAGE_PLACEHOLDER, image_token)  # as lm-eval's hf-multimodal
    inputs = processor(images=[[Image.new("RGB", (32, 32), (200, 10, 10))]], text=[text], return_tensors="pt")
    base = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    with torch.no_grad():
        before = base(**inputs).logits
        after = PeftModel.from_pretrained(base, output).eval()(**inputs).logits
    assert not torch.allclose(before, after, atol=1e-5)
