"""Paper-recipe trainers on one shared model, and one optimizer step of each measured: time, memory, FLOPs.

Used by memory_model.py (CPU, shape models) and gpu_check.py (one GPU, full-size LLaVA-1.5-7B). A
configuration is LLaMA-Factory's SFT step on a forget row (``SFT``) or a paper method with or without PD,
with its recipe's keys (``yaml/<model>_<method>[_pd].yaml``), built as `llamafactory-cli train` builds it,
except that the model is created once per run and shared by every configuration (they have the same LoRA
settings; loading it per configuration would measure the disk, not the step). The model comes from a
weightless shape folder with ``train_from_scratch: true``: LLaMA-Factory builds it from the config, in the
config's dtype, randomly initialised.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

import yaml

RECIPES_DIR = common.BENCH_DIR.parent / "yaml"
METHODS = ("ga", "gd", "kl", "po", "npo")  # the paper's
# recipe keys that carry a model family's choices (docs/models.md); the rest of a recipe is the method's
MODEL_KEYS = ("model_name_or_path", "template", "lora_target", "additional_target", "image_max_pixels", "cutoff_len")


@dataclass(frozen=True)
class Config:
    label: str  # SFT, GA, GA+PD, ...
    method: str  # the unlearning method whose rows the step trains on (SFT: GA's forget row)
    pd: bool
    sft: bool = False


CONFIGS = (
    Config("SFT", "ga", False, sft=True),
    *(Config(method.upper() + ("+PD" if pd else ""), method, pd) for method in METHODS for pd in (False, True)),
)


def recipe(prefix: str, method: str, pd: bool) -> dict[str, Any]:
    """``yaml/<prefix>[_<size>]_<method>[_pd].yaml``; for a method a family ships no recipe of (Qwen2-VL and
    Llama-3.2-Vision: NPO+PD only; the newer families: NPO+PD and PO+PD), the LLaVA-1.5-7B recipe of the method
    with the family's model keys (MODEL_KEYS) from one of its recipes."""
    name = f"{method}{'_pd' if pd else ''}.yaml"
    shipped = sorted(RECIPES_DIR.glob(f"{prefix}_{name}")) or sorted(RECIPES_DIR.glob(f"{prefix}_*_{name}"))
    if shipped:
        return yaml.safe_load(shipped[0].read_text())
    family_recipe = yaml.safe_load(next(RECIPES_DIR.glob(f"{prefix}_*.yaml")).read_text())
    config = recipe("llava7b", method, pd)
    config.pop("image_max_pixels", None)
    config.update({key: family_recipe[key] for key in MODEL_KEYS if key in family_recipe})
    return config


_SHARED: list[Any] = []  # the model shared_model() built last


@contextlib.contextmanager
def shared_model(device: str = "cpu") -> Iterator[None]:
    """While active, LLaMA-Factory's model loader (as the unlearn workflow calls it) builds the model once, on
    ``device`` (a GPU initialises 7B random weights in seconds, a CPU in minutes), and returns that same model
    to every later trainer."""
    import torch

    from llamafactory_safeeraser.integration import llamafactory as lf

    load = lf.load_model
    _SHARED.clear()

    def load_once(*args: Any, **kwargs: Any) -> Any:
        if not _SHARED:
            with torch.device(device):
                _SHARED.append(load(*args, **kwargs))
        return _SHARED[0]

    lf.load_model = load_once
    try:
        yield
    finally:
        lf.load_model = load
        gc.collect()


def last_shared_model() -> Any:
    """The model the last ``shared_model()`` built (for a caller that goes on using it); forgets it."""
    model = _SHARED[0] if _SHARED else None
    _SHARED.clear()
    return model


class RecipeStep:
    """One configuration's trainer and batch; ``step()`` runs one optimizer step (forward, backward, AdamW)."""

    def __init__(self, config: Config, train_config: dict[str, Any]):
        self.config = config
        self.trainer = common.build_unlearning_trainer(train_config)
        features = common.first_features(self.trainer, 1)
        if config.sft:  # LLaMA-Factory's own SFT trainer and collator on the forget row (GA's rows)
            baseline = common.SFTBaseline(self.trainer)
            self.runner, self.batch = baseline.trainer, baseline.batch(features)
        else:
            self.runner, self.batch = self.trainer, self.trainer.data_collator(features)
        self.runner.create_optimizer()
        self.rows = int(self.batch["input_ids"].shape[0])
        self.tokens = int(self.batch["attention_mask"].sum())
        # rows the reference (adapter disabled) runs a forward over: KL's retain row, NPO's forget row
        self.reference_rows = 0 if config.sft else len(self.trainer.reference_row_sets)

    def step(self) -> None:
        cache = getattr(self.trainer, "reference_logp_cache", None)
        if cache is not None:
            cache.clear()  # NPO: every step pays its reference pass (the first epoch's cost)
        # the mixed precision accelerate gives the forward when train() prepares the model (bf16 autocast)
        with self.runner.accelerator.autocast():
            self.runner.training_step(self.runner.model, common.fresh(self.batch))
        self.runner.optimizer.step()
        self.runner.optimizer.zero_grad(set_to_none=True)

    def static_bytes(self) -> dict[str, int]:
        """Tensors that live between steps: frozen and trainable parameters, AdamW's states."""
        params = list(self.runner.model.parameters())
        frozen = sum(p.numel() * p.element_size() for p in params if not p.requires_grad)
        trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
        states = self.runner.optimizer.state.values()
        adam = sum(t.numel() * t.element_size() for state in states for t in state.values() if hasattr(t, "numel"))
        return {"frozen": frozen, "trainable": trainable, "adam": adam}

    def close(self) -> None:
        self.runner.optimizer = None
        self.trainer.optimizer = None
        self.trainer = self.runner = None
        gc.collect()


def measure(step: Callable[[], None], device: str) -> dict[str, float]:
    """Seconds and peak bytes above the start (tensors allocated during the step) of one step.

    GPU: ``torch.cuda.max_memory_allocated``; CPU: the torch profiler's allocator accounting, its CPU
    counterpart, which the timing then includes (small next to a shape model's matrix products).
    """
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated()
        seconds = timed(step, synchronize=torch.cuda.synchronize)
        peak = torch.cuda.max_memory_allocated() - start_bytes
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            seconds = timed(step)
        peak = cpu_peak_bytes(prof)
    return {"seconds": seconds, "peak_bytes": float(peak)}


def count_flops(step: Callable[[], None]) -> float:
    """FLOPs one step executes (torch's FlopCounterMode: matrix products and convolutions, recomputation
    included; CPU attention kernels are not counted). A separate step: the counter slows a GPU step down."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def timed(fn: Callable[[], None], synchronize: Callable[[], None] | None = None) -> float:
    start = time.perf_counter()
    fn()
    if synchronize is not None:
        synchronize()
    return time.perf_counter() - start


def cpu_peak_bytes(prof: Any) -> int:
    """Highest running total of CPU tensor bytes allocated minus freed during a profiled region."""
    import torch

    cpu = torch._C._autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == cpu]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()  # negative for frees
        peak = max(peak, live)
    return peak


def write_skeleton(out_dir: Path, family: str, size: str, text_layers: Any, vision_layers: Any, dtype: str) -> Path:
    """A weightless shape folder (config, tokenizer, processor), built once per layer counts and dtype."""
    from llamafactory_safeeraser.offline.tiny_models.shapes import write_shape_skeleton

    if not (out_dir / "config.json").is_file():
        write_shape_skeleton(out_dir, family, size, text_layers, vision_layers, dtype)
    return out_dir
