"""lm-eval's ``hf-multimodal`` whose sampling depends on the document only, registered as
``safeeraser-hf-multimodal``.

lm-eval seeds torch once per process, so with ``do_sample`` a response depends on the documents generated before
it in that process and on those sharing its batch: one process and N processes (or batch 4 and batch 2) answer
the same document differently. Here every request draws its tokens from its own generator, seeded from the run
seed and the request's identity (task name, doc_id, repeat): :func:`document_seed`. transformers' greedy search
then runs with one last logits processor (:class:`PerRowSampler`) that warps each row as transformers' sampling
does (temperature, top-k, top-p, min-p) and leaves only the token that row's generator drew.

Plain lm-eval finds it too (``hook/lmeval_models`` adds it to lm-eval's model index):
``lm-eval --model safeeraser-hf-multimodal --model_args pretrained=...,seed=S``, under ``torchrun`` (or
``accelerate launch`` on GPUs) for several processes.

Data-parallel: lm-eval's HFLM splits documents over ``accelerate launch`` / ``torchrun`` processes only when the
machine has more than one GPU; this model splits them over the processes on CPU and on one GPU too.
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.hf_vlms import HFMultimodalLM
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from . import MODEL_NAME

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "min_p")
# transformers' other sampling warpers: not reproduced here, so refused rather than silently dropped
UNSUPPORTED_KEYS = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h", "num_beams")


def document_seed(seed: int, task_name: str | None, doc_id: int | None, repeat: int) -> int:
    """The seed of one request's sampling: a function of the run seed and the request's identity only."""
    digest = hashlib.sha256(f"{seed}\0{task_name}\0{doc_id}\0{repeat}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class _SeededContext(str):
    """A request's prompt carrying its seed through lm-eval's batching (which reorders and regroups prompts)."""

    seed: int

    def __new__(cls, text: str, seed: int) -> _SeededContext:
        context = super().__new__(cls, text)
        context.seed = seed
        return context


def sampling_warpers(params: dict[str, Any]) -> list[LogitsProcessor]:
    """transformers' sampling warpers for ``params``, in the order its ``generate`` applies them."""
    warpers: list[LogitsProcessor] = []
    if params.get("temperature") is not None and params["temperature"] != 1.0:
        warpers.append(TemperatureLogitsWarper(params["temperature"]))
    if params.get("top_k") is not None and params["top_k"] != 0:
        warpers.append(TopKLogitsWarper(top_k=params["top_k"]))
    if params.get("top_p") is not None and params["top_p"] < 1.0:
        warpers.append(TopPLogitsWarper(top_p=params["top_p"]))
    if params.get("min_p") is not None:
        warpers.append(MinPLogitsWarper(min_p=params["min_p"]))
    return warpers


class PerRowSampler(LogitsProcessor):
    """The last logits processor of a greedy search that samples: each row's token comes from its own generator.

    Returns scores that are 0 for the drawn token and -inf elsewhere, so the greedy argmax takes it; a row's
    draws consume only its generator, one draw per step, whatever else is in the batch.
    """

    def __init__(self, warpers: Sequence[LogitsProcessor], seeds: Sequence[int]):
        self.warpers = list(warpers)
        self.seeds = list(seeds)
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:  # on the scores' device, known at the first step
            self.generators = [torch.Generator(device=scores.device).manual_seed(seed) for seed in self.seeds]
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.stack(
            [torch.multinomial(probs[row], 1, generator=generator) for row, generator in enumerate(self.generators)]
        )
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter_(1, chosen, 0.0)


@register_model(MODEL_NAME)
class SeededHFMultimodalLM(HFMultimodalLM):
    """``hf-multimodal`` with per-document sampling seeds and data-parallel processes on CPU and one GPU.

    Model argument ``seed``: the run seed (default: ``torch.initial_seed()``, which lm-eval sets from ``--seed``).
    """

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sampling_seed = seed
        self._batch_seeds: list[int | None] | None = None
        accelerator = getattr(self, "accelerator", None)
        # HFLM only splits the documents where it counts more than one GPU; every launched process is a rank here.
        if accelerator is not None and accelerator.num_processes > 1 and self._world_size == 1:
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        seed = self.sampling_seed if self.sampling_seed is not None else torch.initial_seed()
        repeats: Counter[int] = Counter()  # lm-eval passes a request K times for repeats=K: the k-th is repeat k
        seeded = []
        for request in requests:
            repeat = repeats[id(request)]
            repeats[id(request)] += 1
            context, *rest = request.args
            copied = copy.copy(request)
            row_seed = document_seed(seed, request.task_name, request.doc_id, repeat)
            copied.arguments = (_SeededContext(context, row_seed), *rest)
            seeded.append(copied)
        return super().generate_until(seeded, disable_tqdm=disable_tqdm)

    def tok_batch_multimodal_encode(self, strings: list[str], images: list, *args: Any, **kwargs: Any) -> Any:
        self._batch_seeds = [getattr(string, "seed", None) for string in strings]  # this batch's rows, in order
        return super().tok_batch_multimodal_encode(strings, images, *args, **kwargs)

    def _model_multimodal_generate(self, inputs: Any, max_length: int, stop: Any, **generation_kwargs: Any) -> Any:
        seeds, self._batch_seeds = self._batch_seeds, None
        if not generation_kwargs.get("do_sample") or seeds is None or None in seeds:
            return super()._model_multimodal_generate(inputs, max_length, stop, **generation_kwargs)
        unsupported = [key for key in UNSUPPORTED_KEYS if generation_kwargs.get(key) not in (None, 1)]
        if unsupported:
            raise ValueError(f"{MODEL_NAME}: seeded sampling does not support {', '.join(unsupported)}")
        defaults = self.model.generation_config
        params = {key: generation_kwargs.pop(key, getattr(defaults, key, None)) for key in SAMPLING_KEYS}
        processors = LogitsProcessorList(generation_kwargs.pop("logits_processor", None) or [])
        processors.append(PerRowSampler(sampling_warpers(params), seeds))
        generation_kwargs.update({key: None for key in SAMPLING_KEYS})
        generation_kwargs.update(do_sample=False, logits_processor=processors)
        return super()._model_multimodal_generate(inputs, max_length, stop, **generation_kwargs)
