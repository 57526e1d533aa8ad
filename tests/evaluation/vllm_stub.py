"""A stand-in for the ``vllm`` package (and ``ray``, ``more_itertools``, which lm-eval's vLLM models import), so
that lm-eval's own ``vllm-vlm`` class runs without vLLM and records what it would hand to vLLM's engine.

``LLM(**engine_args)`` keeps its arguments; ``LLM.generate(requests, sampling_params, ...)`` keeps each call and
answers every request with one fixed completion. ``SamplingParams`` and ``LoRARequest`` keep their arguments;
``TextPrompt`` is a dict, as vLLM's TypedDict is.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import sys
import types
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

STUB_VERSION = "0.8.0"  # below 0.8.3: lm-eval resolves no vLLM chat template (we apply none)
MAX_MODEL_LEN = 4096
COMPLETION = "I cannot help with that."


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class LoRARequest:
    def __init__(self, name: str, lora_id: int, path: str) -> None:
        self.name, self.lora_id, self.path = name, lora_id, path


class LLM:
    instances: ClassVar[list[LLM]] = []
    on_init: ClassVar[Callable[[dict[str, Any]], Any] | None] = None  # a test's look at the model folder, then

    def __init__(self, **engine_args: Any) -> None:
        self.engine_args = engine_args
        self.seen_at_init = LLM.on_init(engine_args) if LLM.on_init is not None else None
        self.calls: list[dict[str, Any]] = []
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=MAX_MODEL_LEN))
        LLM.instances.append(self)

    def generate(self, requests: list[dict], sampling_params: SamplingParams, **kwargs: Any) -> list:
        self.calls.append({"requests": list(requests), "sampling_params": sampling_params, **kwargs})
        return [SimpleNamespace(outputs=[SimpleNamespace(text=COMPLETION)]) for _ in requests]


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # importlib.util.find_spec needs one
    module.__dict__.update(attributes)
    return module


def vllm_vlm_class(monkeypatch: Any) -> type:
    """lm-eval's ``VLLM_VLM``, imported against the stand-ins (put into ``sys.modules`` for the test). lm-eval's
    registry takes a model name once, so its vLLM modules are imported once per session, bound to these classes."""
    from transformers import AutoTokenizer

    def get_tokenizer(name: str, **kwargs: Any) -> Any:
        kwargs.pop("tokenizer_mode", None)
        return AutoTokenizer.from_pretrained(name, **kwargs)

    modules = {
        "vllm": _module("vllm", LLM=LLM, SamplingParams=SamplingParams, TextPrompt=dict, TokensPrompt=dict),
        "vllm.lora": _module("vllm.lora"),
        "vllm.lora.request": _module("vllm.lora.request", LoRARequest=LoRARequest),
        "vllm.tokenizers": _module("vllm.tokenizers", get_tokenizer=get_tokenizer),
        "ray": _module("ray", remote=lambda fn: fn, get=list, shutdown=lambda: None),
        "more_itertools": _module("more_itertools", distribute=lambda n, items: [list(items)[i::n] for i in range(n)]),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: STUB_VERSION if name == "vllm" else real_version(name)
    )
    LLM.instances.clear()
    monkeypatch.setattr(LLM, "on_init", None)
    from lm_eval.models.vllm_vlms import VLLM_VLM

    return VLLM_VLM
