"""Which lm-eval model generates: ``hf-multimodal`` (transformers' ``generate``) or ``vllm-vlm`` (vLLM's engine).

:func:`lm_eval_model` is the ``--model`` / ``--model_args`` pair a run amounts to; the runner creates it with
lm-eval's registry, and ``safeeraser eval`` prints nothing else about it. The two backends get the same documents:
our prompts are already the LLaMA-Factory template's text (``lmeval_task.documents.render_prompt``) and lm-eval
applies no chat template unless ``--apply_chat_template`` is given (``safeeraser eval`` never gives it), so
``vllm-vlm`` sends the document's prompt as written, ``<image>`` included, and vLLM's processor expands it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from .results import RunSpec, model_location

BACKENDS = ("hf", "vllm")
LM_EVAL_MODEL = {"hf": "hf-multimodal", "vllm": "vllm-vlm"}
# The image placeholder vllm-vlm leaves in the prompt (hf-multimodal swaps it for the model's image token).
VLLM_IMAGE_PLACEHOLDER = "<image>"
# LoRA ranks vLLM's punica kernels take (max_lora_rank): the adapter's rank rounded up to one of these.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class LmEvalModel:
    """lm-eval's ``--model`` name, its ``--model_args`` and the batch arguments of ``create_from_arg_obj``."""

    name: str
    model_args: dict[str, Any]
    batch_args: dict[str, Any]


def check_backend_installed(backend: str) -> None:
    """One line, before any model loads, when the backend's package is missing."""
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise SafeEraserError("key 'backend': vllm is not installed (pip install vllm); use backend=hf")


def check_template_for_vllm(template: str) -> None:
    """vllm-vlm leaves ``<image>`` in the prompt: fine where that is the model's image token (LLaVA's ``llava``
    template); a template whose image token differs (``qwen2_vl``'s ``<|image_pad|>``) would reach vLLM's
    processor without the token it expands, so it is refused."""
    from ..integration.template_text import template_image_token  # imports LLaMA-Factory

    token = template_image_token(template)
    if token not in (None, VLLM_IMAGE_PLACEHOLDER):
        raise SafeEraserError(
            f"key 'backend': vllm-vlm sends images as {VLLM_IMAGE_PLACEHOLDER}, but template '{template}' "
            f"uses {token}; evaluate it with backend=hf"
        )


def check_backend(settings: Any) -> None:
    """The checks of :class:`EvalSettings`' ``backend`` that need no model: package installed, template fits."""
    check_backend_installed(settings.backend)
    if settings.backend == "vllm":
        check_template_for_vllm(settings.template)


def adapter_config(adapter_dir: str) -> dict[str, Any]:
    config_file = Path(adapter_dir) / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise SafeEraserError(f"{config_file}: unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(config, dict):
        raise SafeEraserError(f"{config_file}: not a JSON object")
    return config


def full_modules(adapter_dir: str) -> list[str]:
    """The modules a PEFT adapter saves whole (``modules_to_save``: LLaMA-Factory's ``additional_target``)."""
    return list(adapter_config(adapter_dir).get("modules_to_save") or [])


def lora_rank(adapter_dir: str) -> int:
    """The ``max_lora_rank`` vLLM needs for a PEFT adapter folder: its ``r``, rounded up to a rank vLLM takes."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    try:
        rank = int(adapter_config(adapter_dir)["r"])
    except (KeyError, ValueError, TypeError) as err:
        raise SafeEraserError(f"{config_file}: cannot read the LoRA rank 'r' ({type(err).__name__}: {err})") from None
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise SafeEraserError(f"{config_file}: field 'r': rank {rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")


def lm_eval_model(backend: str, run: RunSpec, batch_size: int, device: str, seed: int) -> LmEvalModel:
    """The lm-eval model of ``run`` under ``backend``: one image per prompt, the adapter as LoRA.

    ``hf``: ``peft=`` loads the adapter onto the base model. ``vllm``: ``lora_local_path=`` (lm-eval then sets
    ``enable_lora`` and sends every request with the adapter; an adapter with whole modules is merged first by
    the runner, see ``Evaluator.load_vllm_model``), the engine seeded with ``seed``,
    requests handed to vLLM all at once (``batch_size=auto``: vLLM schedules its own batches).
    """
    pretrained = model_location(run.model)
    adapter = model_location(run.adapter) if run.adapter is not None else None
    if backend == "hf":
        model_args: dict[str, Any] = {"pretrained": pretrained, "max_images": 1}
        if adapter is not None:
            model_args["peft"] = adapter
        return LmEvalModel(LM_EVAL_MODEL[backend], model_args, {"batch_size": batch_size, "device": device})
    if backend == "vllm":
        # max_images != 999 makes lm-eval pass limit_mm_per_prompt={"image": 1} to vLLM
        model_args = {"pretrained": pretrained, "max_images": 1, "seed": seed}
        if adapter is not None:
            model_args["lora_local_path"] = adapter
            model_args["max_lora_rank"] = lora_rank(adapter)
        return LmEvalModel(LM_EVAL_MODEL[backend], model_args, {"batch_size": "auto"})
    raise SafeEraserError(f"key 'backend': {backend!r} is not one of {', '.join(BACKENDS)}")
