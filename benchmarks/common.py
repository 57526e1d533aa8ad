"""Shared pieces of the benchmark scripts: assets, trainers, timing, tables, JSON, machine facts.

Every script measures ratios side by side in one process (the machine is shared and noisy), with
warm-up, repeats and medians, and writes one JSON document. The model is built offline from a
config (``tiny_models``) and the data is the synthetic SafeEraser benchmark, so nothing is
downloaded. See docs/performance.md for what each script measures and why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamafactory_safeeraser.fileio import write_json_atomic

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_WORK_DIR = BENCH_DIR / ".work"  # cached model and data (git-ignored)
METHODS = ("ga", "gd", "kl", "po", "npo")  # the methods; --methods takes any registered name


# ----- command line ---------------------------------------------------------------------------
def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Options every script shares; ``name`` names the default output file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="smoke-test mode: tiny model, one repeat, no warm-up")
    parser.add_argument("--size", default=None, help="tiny-model size (default: small, or tiny with --quick)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where the model and data are cached")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine one busy neighbour stalls multi-threaded ops)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs per measurement")
    return parser


@dataclass(frozen=True)
class RunOptions:
    size: str
    repeats: int
    warmup: int
    quick: bool
    load_average_at_start: tuple[float, ...] = ()  # other work on the machine while measuring, 1/5/15 min


def run_options(args: argparse.Namespace, repeats: int, warmup: int = 2) -> RunOptions:
    """Resolve the shared options; ``--quick`` means the tiny model and the fewest repeats."""
    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    if args.quick:
        return RunOptions(args.size or "tiny", args.repeats or 1, args.warmup or 0, True, load)
    warmup = args.warmup if args.warmup is not None else warmup
    return RunOptions(args.size or "small", args.repeats or repeats, warmup, False, load)


# ----- model and data -------------------------------------------------------------------------
@dataclass(frozen=True)
class Assets:
    model_dir: Path
    data_dir: Path  # all_train.json / all_val.json with images
    dataset_dir: Path  # LLaMA-Factory datasets (dataset_info.json)


def ensure_assets(work_dir: Path, size: str) -> Assets:
    """Build (once) the offline tiny LLaVA of ``size``, the synthetic benchmark and its LLaMA-Factory sets."""
    from llamafactory_safeeraser.data.prepare import prepare_datasets
    from llamafactory_safeeraser.offline.synthetic import write_synthetic_benchmark
    from llamafactory_safeeraser.offline.tiny_models import write_tiny_model

    model_dir = work_dir / f"llava-{size}"
    data_dir = work_dir / "data"
    dataset_dir = work_dir / "datasets"
    if not (model_dir / "config.json").is_file():
        write_tiny_model(model_dir, family="llava", size=size, seed=0, overwrite=True)
    if not (data_dir / "all_train.json").is_file():
        write_synthetic_benchmark(data_dir, images_per_concept=4, seed=233, overwrite=True)
    if not (dataset_dir / "dataset_info.json").is_file():
        prepare_datasets(data_dir / "all_train.json", dataset_dir, overwrite=True)
    return Assets(model_dir, data_dir, dataset_dir)


SHAPE_IMAGE_SIZE = 336  # LLaVA-1.5's input size; Qwen2-VL then writes 144 image tokens


def ensure_shape_data(work_dir: Path) -> Assets:
    """Build (once) the synthetic benchmark with 336 px images and its LLaMA-Factory sets, for shape models.
    (``model_dir`` is unused: shape models are built per layer count.)"""
    from llamafactory_safeeraser.data.prepare import prepare_datasets
    from llamafactory_safeeraser.offline.synthetic import write_synthetic_benchmark

    data_dir, dataset_dir = work_dir / "shape-data", work_dir / "shape-datasets"
    if not (data_dir / "all_train.json").is_file():
        write_synthetic_benchmark(data_dir, images_per_concept=1, seed=233, overwrite=True, image_size=SHAPE_IMAGE_SIZE)
    if not (dataset_dir / "dataset_info.json").is_file():
        prepare_datasets(data_dir / "all_train.json", dataset_dir, overwrite=True)
    return Assets(work_dir, data_dir, dataset_dir)


def text_config(model_dir: Path) -> dict[str, Any]:
    """The language model's config (hidden size, layers, ...) of a LLaVA checkpoint folder."""
    return json.loads((model_dir / "config.json").read_text())["text_config"]


def unlearn_config(
    assets: Assets, method: str, with_pd: bool, batch_size: int, out_dir: Path, **overrides: Any
) -> dict:
    """A `stage: unlearn` config with the paper's LoRA settings (yaml/llava7b_*.yaml), sized for the CPU."""
    config: dict[str, Any] = {
        "model_name_or_path": str(assets.model_dir),
        "template": "llava",
        "stage": "unlearn",
        "do_train": True,
        "unlearn_method": method,
        "dataset_dir": str(assets.dataset_dir),
        "dataset": "safeeraser_forget",
        "finetuning_type": "lora",
        "lora_rank": 32,
        "lora_alpha": 256,
        "lora_dropout": 0.05,
        "lora_target": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        "additional_target": "multi_modal_projector",
        "cutoff_len": 1024,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "output_dir": str(out_dir),
        "overwrite_output_dir": True,
        "report_to": "none",
        "save_strategy": "no",
        "per_device_train_batch_size": batch_size,
        "learning_rate": 1.0e-4,
        "max_samples": max(4 * batch_size, 32),
        "seed": 233,
    }
    if needs_retain_rows(method):
        config["retain_dataset"] = "safeeraser_retain"
    if with_pd:
        config["pd_dataset"] = "safeeraser_pd"
    config.update(overrides)
    return config


def needs_retain_rows(method: str) -> bool:
    """Whether the method's default loss reads retain rows (GD, KL, PO; not GA or NPO)."""
    from types import SimpleNamespace

    from llamafactory_safeeraser.unlearn.registry import get_method

    trainer_class = get_method(method)
    return trainer_class.uses_retain_rows(SimpleNamespace(**{p.name: p.default for p in trainer_class.params}))


def build_unlearning_trainer(config: dict) -> Any:
    """Parse ``config`` as `llamafactory-cli train` would and build the unlearning trainer (no training)."""
    from llamafactory_safeeraser.hook.stage import parse_train_args
    from llamafactory_safeeraser.unlearn.workflow import create_unlearning_trainer

    model_args, data_args, training_args, finetuning_args, _ = parse_train_args(config)
    trainer = create_unlearning_trainer(model_args, data_args, training_args, finetuning_args)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; training_step divides by it
    return trainer


class SFTBaseline:
    """LLaMA-Factory's own SFT step on the same model and the same rows.

    The rows of a stacked unlearning batch (forget, retain, PD) are collated as plain SFT rows by
    LLaMA-Factory's SFT collator and trained by LLaMA-Factory's ``CustomSeq2SeqTrainer``, whose
    loss is the model's own LM loss. Sharing the unlearning trainer's model means the same LoRA
    layers, gradient checkpointing and dtype, so only the loss code and the collation differ.
    """

    def __init__(self, unlearning_trainer: Any):
        from llamafactory_safeeraser.integration import llamafactory as lf

        collator = unlearning_trainer.data_collator
        self.collator = lf.SFTDataCollatorWith4DAttentionMask(
            template=collator.template,
            model=unlearning_trainer.model,
            pad_to_multiple_of=collator.pad_to_multiple_of,
            label_pad_token_id=collator.label_pad_token_id,
            compute_dtype=collator.compute_dtype,
            attn_implementation=collator.attn_implementation,
            tokenizer=collator.tokenizer,
            processor=collator.processor,
        )
        self.trainer = lf.CustomSeq2SeqTrainer(
            model=unlearning_trainer.model,
            args=unlearning_trainer.args,
            finetuning_args=unlearning_trainer.finetuning_args,
            data_collator=self.collator,
            processor=collator.processor,
            tokenizer=collator.tokenizer,
        )
        self.trainer.current_gradient_accumulation_steps = 1

    def batch(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """The stacked rows, in the order the unlearning collator stacks them, as one SFT batch."""
        from llamafactory_safeeraser.unlearn.trainer import ROW_SETS

        row_sets = [row_set for row_set in ROW_SETS if row_set in features[0]]
        return self.collator([dict(feature[row_set]) for row_set in row_sets for feature in features])


def first_features(trainer: Any, batch_size: int) -> list[dict[str, Any]]:
    """The first ``batch_size`` dataset items (each holds a forget row and its retain and PD rows)."""
    return [trainer.train_dataset[i] for i in range(batch_size)]


def fresh(batch: dict[str, Any]) -> dict[str, Any]:
    """A copy of a collated batch that a step may pop from (nested dicts copied, tensors shared)."""
    return {key: fresh(value) if isinstance(value, dict) else value for key, value in batch.items()}


# ----- timing ---------------------------------------------------------------------------------
def time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_timings(
    candidates: dict[str, Callable[[], Any]], repeats: int, warmup: int, before_each: Callable[[], Any] | None = None
) -> dict[str, list[float]]:
    """Time each candidate ``repeats`` times, round-robin, after ``warmup`` untimed rounds.

    Round-robin (A B C, A B C, ...) spreads the machine's load swings over all candidates, so
    their ratio stays meaningful on a shared box. ``before_each`` runs untimed before every call.
    """
    timings: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(warmup + repeats):
        for name, fn in candidates.items():
            if before_each is not None:
                before_each()
            elapsed = time_once(fn)
            if round_index >= warmup:
                timings[name].append(elapsed)
    return timings


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, spread and the raw values of a list of seconds."""
    return {
        "median_s": median(values),
        "min_s": min(values),
        "max_s": max(values),
        "n": len(values),
        "values_s": [round(v, 6) for v in values],
    }


# ----- FLOPs and the machine's matmul rate ------------------------------------------------------
def gemm_rate(m: int, k: int, n: int, repeats: int = 10) -> float:
    """Measured fp32 rate (GFLOP/s) of one [m, k] @ [k, n] matrix product, median of ``repeats``."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(2):
        a @ b
    return 2 * m * k * n / median(time_once(lambda: a @ b) for _ in range(repeats)) / 1e9


def measure_matmul_rate(sizes: Sequence[int] = (1024, 2048), model_shape: Sequence[int] | None = None) -> dict:
    """The machine's fp32 matmul rate: the best over square sizes (the peak a step could approach) and,
    when given, the rate at one of the model's own GEMM shapes ``(tokens, hidden, intermediate)``."""
    rates = {str(n): gemm_rate(n, n, n) for n in sizes}
    result: dict[str, Any] = {"gflops_by_size": rates, "gflops": max(rates.values())}
    if model_shape is not None:
        result["model_shape"] = {"m_k_n": list(model_shape), "gflops": gemm_rate(*model_shape)}
    return result


def executed_flops(fn: Callable[[], Any]) -> float:
    """Matmul/convolution FLOPs ``fn`` actually runs (forward, backward and any recomputation), as counted
    by torch's FlopCounterMode; CPU attention kernels are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def step_flops(model: Any, batch: dict[str, Any]) -> dict[str, float]:
    """Lower bound on the FLOPs of one LoRA forward+backward over a batch, from parameter and token counts.

    Forward: 2 FLOPs per weight per token for every linear layer the token passes (language
    model incl. the LM head; projector and vision tower for image tokens) plus the attention
    score and value products (4 * T^2 * d per layer and sequence). Backward through frozen
    weights needs only the input gradients (the same FLOPs again); trainable weights (LoRA,
    the projector) also need weight gradients (2 more per weight per token); the vision tower
    gets no backward. Counts use the real (non-padding) tokens; gradient checkpointing's
    recomputed forward is an implementation choice, not part of the floor.
    """
    import torch

    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = core.config
    text, vision = config.text_config, config.vision_config
    frozen = {"text": 0, "vision": 0, "projector": 0}
    trainable = {"text": 0, "vision": 0, "projector": 0}
    for name, module in core.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        part = "vision" if "vision_tower" in name else "projector" if "multi_modal_projector" in name else "text"
        if ".original_module" in name:  # PEFT's untouched copy of a fully trained module (only for the reference)
            continue
        bucket = trainable if module.weight.requires_grad else frozen
        bucket[part] += module.weight.numel()

    mask = batch["attention_mask"]
    real_tokens = int((mask > 0).sum())
    lengths = (mask > 0).sum(-1).tolist()
    images = int(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0
    image_tokens_per_image = (vision.image_size // vision.patch_size) ** 2
    vision_tokens = images * (image_tokens_per_image + 1)  # + CLS
    text_attention = sum(4 * length**2 * text.hidden_size * text.num_hidden_layers for length in lengths)
    vision_attention = images * 4 * (image_tokens_per_image + 1) ** 2 * vision.hidden_size * vision.num_hidden_layers

    text_weights = frozen["text"] + trainable["text"]
    forward = (
        2 * text_weights * real_tokens
        + 2 * (frozen["projector"] + trainable["projector"]) * images * image_tokens_per_image
        + 2 * (frozen["vision"] + trainable["vision"]) * vision_tokens
        + text_attention
        + vision_attention
    )
    backward = (
        2 * text_weights * real_tokens  # input gradients through every text layer
        + 2 * trainable["text"] * real_tokens  # weight gradients of LoRA layers
        + 2 * text_attention  # gradients of the two attention products
        + 4 * trainable["projector"] * images * image_tokens_per_image
    )
    return {
        "forward_flops": float(forward),
        "backward_flops": float(backward),
        "total_flops": float(forward + backward),
        "real_tokens": real_tokens,
        "padded_tokens": int(mask.numel()),
        "text_linear_weights": text_weights,
        "trainable_weights": sum(trainable.values()),
    }


# ----- machine, tables, JSON ------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU (from /proc/cpuinfo where available), cores, torch version, threads and BLAS."""
    import torch

    cpu: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "stepping", "cpu MHz") and key not in cpu:
                cpu[key] = value.strip()
    info = {
        "cpu_model": cpu.get("model name") or platform.processor() or "unknown",
        "cpu_family_model_stepping": "/".join(cpu.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cpu_mhz": cpu.get("cpu MHz"),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    return info


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out: Path, name: str, options: RunOptions, results: dict[str, Any], started: float) -> None:
    """Write the JSON document every script produces: what ran, on what, and the numbers."""
    document = {
        "benchmark": name,
        "quick": options.quick,
        "model_size": options.size,
        "repeats": options.repeats,
        "warmup": options.warmup,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "load_average": {
            "start": list(options.load_average_at_start),
            "end": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        },
        "duration_s": round(time.time() - started, 1),
        **results,
    }
    write_json_atomic(out, document)
    print(f"\nwrote {out}")
