"""One process of the GPU check's ZeRO-2 vs DDP comparison: NPO+PD's LLaVA-1.5-7B recipe trained a few optimizer
steps through LLaMA-Factory's own training loop (the `unlearn` stage, ``Trainer.train``), with or without the
recipe's ``deepspeed`` key, timing every step and its peak memory with a callback.

Run under ``torchrun --nproc_per_node 1`` (``gpu_check.zero_part`` does): that makes accelerate wrap the model in
``DistributedDataParallel`` (gradients all-reduced in buckets, on one rank) and makes DeepSpeed's engine start;
on one GPU ZeRO-2 partitions nothing (one rank holds every partition) but still keeps its fp32 master weights,
steps AdamW on them and reduces gradients in buckets. Same rows (the recipe's data order, seed 42), bf16, AdamW
(``adamw_torch``, the recipes' ``optim``), the recipe's learning rate schedule; step 1 is a warm-up.
Writes one JSON object to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import recipe_steps


def probe_callback(device: str) -> Any:
    """A TrainerCallback recording each optimizer step's seconds and peak bytes above its start (GPU only)."""
    import torch
    from transformers import TrainerCallback

    cuda = device == "cuda"

    class StepProbe(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[dict[str, float | None]] = []
            self.engine: dict[str, str] = {}
            self.between_steps_bytes: int | None = None
            self._start = 0.0
            self._start_bytes = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from accelerate.state import PartialState

            self.engine["distributed_type"] = str(PartialState().distributed_type)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self._start_bytes = torch.cuda.memory_allocated()
                self.between_steps_bytes = self._start_bytes  # weights, fp32 masters, AdamW states
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - self._start
            peak = torch.cuda.max_memory_allocated() if cuda else None
            optimizer = kwargs.get("optimizer")
            inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper around the real one
            self.engine.setdefault("optimizer", type(inner).__name__)
            start_bytes = self._start_bytes if cuda else None
            self.steps.append({"seconds": seconds, "peak_bytes": peak, "start_bytes": start_bytes})

    return StepProbe()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="the weightless LLaVA-1.5-7B shape folder")
    parser.add_argument("--dataset-dir", type=Path, required=True, help="LLaMA-Factory datasets (dataset_info.json)")
    parser.add_argument("--text-layers", type=int, default=32, help="the model's language layers (RMU's layer)")
    parser.add_argument("--deepspeed", default=None, help="a DeepSpeed config (none: DDP)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps; the first is a warm-up")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import torch

    from llamafactory_safeeraser.hook.stage import install
    from llamafactory_safeeraser.integration import llamafactory as lf
    from llamafactory_safeeraser.offline.cpu_recipe import cpu_recipe

    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = cpu_recipe(recipe_steps.recipe("llava7b", "npo", True), args.model_dir, args.dataset_dir,
                        args.text_layers, max_steps=args.steps)  # fmt: skip
    if device == "cuda":
        config.pop("use_cpu")
    if args.deepspeed:
        config["deepspeed"] = args.deepspeed
    probe = probe_callback(device)
    with tempfile.TemporaryDirectory() as out_dir:
        config.update(output_dir=out_dir, train_from_scratch=True, report_to="none", save_strategy="no")
        tuner = lf.import_tuner()
        install(tuner)  # `stage: unlearn`, as the start-up hook adds it to `llamafactory-cli train`
        started = time.perf_counter()
        tuner.run_exp(config, callbacks=[probe])
        total_s = time.perf_counter() - started
    measured = probe.steps[1:] or probe.steps  # step 1: warm-up (allocator, DeepSpeed's buckets, kernels)
    result = {
        "setup": "zero2" if args.deepspeed else "ddp",
        "deepspeed_config": args.deepspeed,
        "device": device,
        **probe.engine,
        "steps": probe.steps,
        "step_s": common.median(step["seconds"] for step in measured),
        "peak_bytes": max(step["peak_bytes"] for step in measured) if device == "cuda" else None,
        "between_steps_bytes": probe.between_steps_bytes,
        "max_allocated_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "run_s": total_s,
        "torch": torch.__version__,
    }
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
