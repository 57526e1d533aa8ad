"""The ``safeeraser`` tasks under lm-eval's ``vllm-vlm`` model, without vLLM: lm-eval's own class runs against a
stand-in ``vllm`` (tests/evaluation/vllm_stub.py) that records the engine's arguments and each ``generate`` call.

What vLLM would receive, per document: the document's prompt as written (the LLaMA-Factory template's text, no
chat template on top, one ``<image>``), the document's image unchanged, and sampling parameters from the tasks'
``generation_kwargs``. Processed as vLLM's LLaVA path does (the model's processor on prompt and image), the prompt
gives the token ids hf-multimodal generates from, token for token (the tiny LLaVA's Llama tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import vllm_stub
from prompt_parity import eval_tasks

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.backends import (
    check_backend_installed,
    check_template_for_vllm,
    lm_eval_model,
    lora_rank,
)
from llamafactory_safeeraser.evaluation.processor_bos import check_vllm_bos, one_bos_like_training
from llamafactory_safeeraser.evaluation.results import RunSpec
from llamafactory_safeeraser.lmeval_task.documents import load_image

TASKS = ("safeeraser_efficacy", "safeeraser_sarr", "safeeraser_utility")


def instances(synthetic_dir: Path, model_dir: Path, per_task: int = 2) -> list:
    """lm-eval's generate_until instances of the first documents of three task kinds (of different lengths), the
    prompts written for ``model_dir``'s tokenizer as ``safeeraser eval`` writes them."""
    loaded = eval_tasks("llava", synthetic_dir / "all_train.json", list(TASKS), tokenizer=str(model_dir))
    chosen = []
    for kind in TASKS:
        task, _ = loaded[kind][0]
        task.build_all_requests(limit=per_task, rank=0, world_size=1)
        chosen += task.instances[:per_task]
    return chosen


def vllm_lm(monkeypatch, run: RunSpec):
    VLLM_VLM = vllm_stub.vllm_vlm_class(monkeypatch)
    built = lm_eval_model("vllm", run, batch_size=4, device="cuda", seed=233)
    assert built.name == "vllm-vlm"
    return VLLM_VLM.create_from_arg_obj(built.model_args, built.batch_args)


def test_vllm_vlm_gets_the_documents_prompt_and_image_as_hf_multimodal_encodes_them(
    monkeypatch, shape_processor_dir, synthetic_dir: Path
) -> None:
    from transformers import AutoProcessor

    model_dir = shape_processor_dir("llava")  # LLaVA-1.5-7B's config, tokenizer (adds <s>) and processor
    lm = vllm_lm(monkeypatch, RunSpec("base", str(model_dir), None))
    (engine,) = vllm_stub.LLM.instances
    assert engine.engine_args["model"] == str(model_dir)
    assert engine.engine_args["limit_mm_per_prompt"] == {"image": 1}  # from max_images=1
    assert engine.engine_args["seed"] == 233 and engine.engine_args["enable_lora"] is False

    requests = instances(synthetic_dir, model_dir)
    assert lm.generate_until(requests, disable_tqdm=True) == [vllm_stub.COMPLETION] * len(requests)
    (call,) = engine.calls  # batch_size=auto: every request in one generate call, vLLM schedules
    assert "lora_request" not in call
    sampled = call["sampling_params"].kwargs
    # the tasks' generation_kwargs; do_sample dropped (vLLM samples whenever temperature > 0); the EOS as stop
    # text; lm-eval's own choice to keep special tokens in the decoded text
    assert sampled == {
        "max_tokens": 512,
        "stop": ["</s>"],
        "temperature": 1.0,
        "top_p": 0.9,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }

    # lm-eval reorders requests (longest first); a harmful question is asked of two images (efficacy, SARR)
    sent_requests = {(r["prompt"], r["multi_modal_data"]["image"][0].tobytes()): r for r in call["requests"]}
    assert len(sent_requests) == len(requests)
    processor = AutoProcessor.from_pretrained(model_dir)  # as released: what vLLM's engine loads
    hf_processor = AutoProcessor.from_pretrained(model_dir)
    one_bos_like_training(hf_processor)  # what the runner does to hf-multimodal's
    image_token = hf_processor.tokenizer.decode([hf_processor.tokenizer.convert_tokens_to_ids("<image>")])
    lengths = set()
    for instance in requests:
        context, _, visual = instance.args
        sent = sent_requests[(context, load_image(instance.doc).tobytes())]
        # the document's prompt, unchanged: no chat template, the one <image> kept for vLLM's processor
        assert sent["prompt"] == instance.doc["prompt"] and sent["prompt"].count("<image>") == 1
        assert not sent["prompt"].startswith("<s>")
        (image,) = sent["multi_modal_data"]["image"]
        assert np.array_equal(np.asarray(image), np.asarray(load_image(instance.doc)))
        vllm_ids = processor(text=[sent["prompt"]], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        hf_text = context.replace("<image>", image_token)  # hf-multimodal's replace_placeholders
        hf_ids = hf_processor(text=[hf_text], images=[visual["visual"][0]], return_tensors="pt")["input_ids"][0]
        assert vllm_ids == hf_ids.tolist()
        assert vllm_ids[0] == processor.tokenizer.bos_token_id != vllm_ids[1]  # one <s>, as training
        assert vllm_ids.count(processor.tokenizer.convert_tokens_to_ids("<image>")) == 576  # 336 px, 14 px patches
        lengths.add(len(vllm_ids))
    assert len(lengths) > 1  # documents of different lengths


def test_vllm_vlm_sends_every_request_with_the_adapter_as_lora(
    monkeypatch, tiny_model_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 24, "peft_type": "LORA"}))
    lm = vllm_lm(monkeypatch, RunSpec("npo", str(tiny_model_dir), str(adapter)))
    (engine,) = vllm_stub.LLM.instances
    assert engine.engine_args["enable_lora"] is True and engine.engine_args["max_lora_rank"] == 32  # 24 rounded up
    lm.generate_until(instances(synthetic_dir, tiny_model_dir, per_task=1), disable_tqdm=True)
    assert engine.calls[0]["lora_request"].path == str(adapter)


def test_an_adapter_with_a_fully_trained_projector_is_merged_before_vllm_loads_it(
    monkeypatch, tiny_model_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    """The paper recipes' ``additional_target: multi_modal_projector`` saves the projector whole, which vLLM's
    LoRA would drop: the runner merges the adapter and hands vLLM the merged folder, without LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from llamafactory_safeeraser.evaluation import EvalSettings, Evaluator

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], modules_to_save=["multi_modal_projector"])
    peft_model = get_peft_model(model, config)
    trained = {}
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "modules_to_save.default" in name:
                param.add_(0.5)  # a trained projector: not the base's
                trained[name.split("multi_modal_projector.")[1].replace("modules_to_save.default.", "")] = param.clone()
    adapter = tmp_path / "npo_pd"
    peft_model.save_pretrained(adapter)

    def projector_at_init(engine_args: dict) -> dict:
        folder = Path(engine_args["model"])
        weights = {}
        for file in folder.glob("*.safetensors"):
            weights.update(load_file(file))
        return {name.split("multi_modal_projector.")[1]: t for name, t in weights.items() if "projector" in name}

    vllm_stub.vllm_vlm_class(monkeypatch)
    monkeypatch.setattr(vllm_stub.LLM, "on_init", projector_at_init)
    evaluator = Evaluator(EvalSettings(data_dir=synthetic_dir, backend="vllm"))
    evaluator.load_model(RunSpec("npo_pd", str(tiny_model_dir), str(adapter)))
    (engine,) = vllm_stub.LLM.instances
    merged_dir = Path(engine.engine_args["model"])
    assert merged_dir != tiny_model_dir and engine.engine_args["enable_lora"] is False
    assert not merged_dir.exists()  # only lived while the engine loaded it
    assert set(engine.seen_at_init) == set(trained)
    for name, value in trained.items():
        assert torch.equal(engine.seen_at_init[name].float(), value.float()), name


def test_built_lm_eval_arguments_of_each_backend(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    run = RunSpec("npo", "llava-hf/llava-1.5-7b-hf", str(adapter))
    hf = lm_eval_model("hf", run, batch_size=8, device="cpu", seed=1)
    assert (hf.name, hf.model_args, hf.batch_args) == (
        "hf-multimodal",
        {"pretrained": "llava-hf/llava-1.5-7b-hf", "max_images": 1, "peft": str(adapter)},
        {"batch_size": 8, "device": "cpu"},
    )
    vllm = lm_eval_model("vllm", run, batch_size=8, device="cuda", seed=1)
    assert (vllm.name, vllm.model_args, vllm.batch_args) == (
        "vllm-vlm",
        {
            "pretrained": "llava-hf/llava-1.5-7b-hf",
            "max_images": 1,
            "seed": 1,
            "lora_local_path": str(adapter),
            "max_lora_rank": 8,
        },
        {"batch_size": "auto"},
    )
    base = lm_eval_model("vllm", RunSpec("base", "llava-hf/llava-1.5-7b-hf", None), 1, "cuda", 1)
    assert "lora_local_path" not in base.model_args and "max_lora_rank" not in base.model_args


def test_vllm_refusals_are_one_line(monkeypatch, tmp_path: Path, shape_processor_dir) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name))
    with pytest.raises(SafeEraserError, match=r"^key 'backend': vllm is not installed \(pip install vllm\)"):
        check_backend_installed("vllm")
    check_backend_installed("hf")
    check_template_for_vllm("llava")
    with pytest.raises(SafeEraserError, match=r"template 'qwen2_vl' uses <\|image_pad\|>; evaluate it with backend=hf"):
        check_template_for_vllm("qwen2_vl")
    with pytest.raises(SafeEraserError, match=r"template 'mllama' uses <\|image\|>"):
        check_template_for_vllm("mllama")
    with pytest.raises(SafeEraserError, match=r"field 'r'.*above vLLM's largest"):
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 1024}))
        lora_rank(str(tmp_path))
    from transformers import AutoProcessor

    check_vllm_bos(AutoProcessor.from_pretrained(shape_processor_dir("llava")))  # one <s>: fine
    with pytest.raises(SafeEraserError, match="writes two BOS tokens"):
        check_vllm_bos(AutoProcessor.from_pretrained(shape_processor_dir("mllama")))
