"""Memory and time model at the released shapes: per-layer peak memory and step time measured on shape models,
extrapolated to the full LLaVA-1.5-7B/13B, Qwen2-VL-7B, Llama-3.2-11B-Vision, Qwen2.5-VL-7B, Qwen3-VL-8B,
Gemma-3-12B, InternVL3-8B and LLaVA-NeXT-7B.

For each model (``--models``) its shape model is built with n and n+1 language layers (n: the fewest the
architecture allows; ``offline/tiny_models/shapes``), in bf16, and every configuration (``recipe_steps``:
LLaMA-Factory's SFT step on a forget row, and GA, GD, KL, PO, NPO without and with PD, each with its
recipe's keys: LoRA r32/alpha 256 on the seven projections, the projector trained, the vision tower
frozen, batch 1, bf16 autocast on the CPU) trains one warm-up step and one measured step, with gradient
checkpointing on (LLaMA-Factory's default) and off. Measured per configuration:

- static bytes, counted from the tensors: frozen and trainable parameters, AdamW's states;
- step peak: the highest total of tensor bytes allocated during the measured step above its start
  (activations, gradients, temporaries), by the torch profiler's allocator accounting;
- executed FLOPs (FlopCounterMode, the warm-up step) and seconds of the measured step.

Per layer = value(n+1) - value(n). The full model = value(n) + (L - n) x per layer, plus the frozen
weights of the layers the shape model lacks, counted exactly from the released config (a meta-device
build), and, for FLOPs, the vision layers it lacks: a no-grad forward is measured with v and v+1 vision
layers, once per image the step encodes. Time on this CPU = FLOPs at the median FLOP/s the runs achieved
(``summarize``: single step times on a shared machine are too noisy to difference). ``--recompute`` redoes
the model from an earlier JSON's measurements. Per GPU under data parallelism over N GPUs (``--gpus``,
the recipes' 2): DDP keeps everything; ZeRO-2 shards AdamW's states and the gradients; ZeRO-3 also the
parameters, plus one gathered decoder layer (the largest module it gathers besides the embeddings).

    python benchmarks/memory_model.py [--models llava7b,...,llavanext (MODELS)] [--gpus 2] [--count-static]

``--count-static`` only counts the static bytes from the released configs (``counted_static``: no step, no
activations), in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import recipe_steps

NAME = "memory_model"
GIB = 2**30
MODELS = ("llava7b", "llava13b", "qwen2vl", "llama32v", "qwen25vl", "qwen3vl", "gemma3", "internvl3", "llavanext")


@dataclasses.dataclass(frozen=True)
class Shape:
    prefix: str  # the recipes' model prefix
    family: str
    size: str
    text_layers: int  # the fewest; the model is also measured with one more
    vision_layers: int
    full_text_layers: int
    missing_vision_layers: int  # vision layers the shape model lacks (Mllama: local and global ones)


def shape_of(prefix: str, base_layers: int | None = None) -> Shape:
    from llamafactory_safeeraser.offline.cpu_recipe import RECIPE_SHAPES
    from llamafactory_safeeraser.offline.tiny_models.shapes import (
        released_model,
        resolve_layers,
        shape_config,
    )

    family, size = RECIPE_SHAPES[prefix]
    text, vision = resolve_layers(family, size, base_layers, None)
    full_text, full_vision = released_model(family, size).layer_counts()
    cut, full = shape_config(family, size).vision_config, shape_config(family, size, "full", "full").vision_config
    missing_global = getattr(full, "num_global_layers", 0) - getattr(cut, "num_global_layers", 0)
    return Shape(prefix, family, size, text, vision, full_text, full_vision - vision + missing_global)


def parameter_count(shape: Shape, text_layers: Any, vision_layers: Any) -> int:
    """Parameters of the shape model with these layer counts (meta device: no memory)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from llamafactory_safeeraser.offline.tiny_models.shapes import shape_config

    config = shape_config(shape.family, shape.size, text_layers, vision_layers)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return sum(p.numel() for p in model.parameters())


VISION_ROOTS = ("visual", "vision_tower", "vision_model")  # the towers `freeze_vision_tower` keeps LoRA out of


def counted_static(prefix: str) -> dict[str, int]:
    """Static bytes of the full model under its NPO+PD recipe, counted from the released config (meta device):
    bf16 weights (the projector's original stays frozen beside its trained copy), LoRA (r x (in + out) per
    targeted language-model projection) and the projector trained in fp32, and AdamW's two fp32 states.
    The figures the measured runs give, without a step (so without the step peak)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from llamafactory_safeeraser.offline.tiny_models.shapes import shape_config

    shape = shape_of(prefix)
    config = recipe_steps.recipe(prefix, "npo", True)
    targets, projector = set(config["lora_target"].split(",")), config["additional_target"]
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(shape_config(shape.family, shape.size, "full", "full"))
    lora = sum(
        config["lora_rank"] * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.rsplit(".", 1)[-1] in targets
        and not set(name.split(".")) & set(VISION_ROOTS)
        and f".{projector}." not in f".{name}."
    )
    projected = sum(p.numel() for name, p in model.named_parameters() if f".{projector}." in f".{name}")
    total = sum(p.numel() for p in model.parameters())
    trainable = 4 * (lora + projected)
    return {"frozen": 2 * total, "trainable": trainable, "adam": 2 * trainable}


def print_counted_static(prefixes: list[str], gpus: int) -> None:
    headers = ["model", "frozen GiB", "trainable GiB", "AdamW GiB", "DDP GiB", "ZeRO-2 GiB"]
    rows = []
    for prefix in prefixes:
        static = counted_static(prefix)
        frozen, trainable, adam = (static[key] / GIB for key in ("frozen", "trainable", "adam"))
        rows.append(
            [prefix, frozen, trainable, adam, frozen + trainable + adam, frozen + trainable + (adam + trainable) / gpus]
        )
    print(f"static bytes per GPU before any step, {gpus} GPUs (ZeRO-2 shards AdamW's states and the gradients)")
    print(common.format_table(headers, rows))


def measure_layers(
    shape: Shape, text_layers: int, gc: bool, configs: list, work_dir: Path, data: common.Assets
) -> list[dict[str, Any]]:
    """Every configuration on the shape model with ``text_layers`` layers, sharing one model."""
    from llamafactory_safeeraser.offline.cpu_recipe import CPU_DTYPE, cpu_recipe

    folder = work_dir / f"skeleton-{shape.prefix}-t{text_layers}"
    recipe_steps.write_skeleton(folder, shape.family, shape.size, text_layers, None, CPU_DTYPE)
    results = []
    with recipe_steps.shared_model(), tempfile.TemporaryDirectory() as out_dir:
        for config in configs:
            method_recipe = recipe_steps.recipe(shape.prefix, config.method, config.pd)
            train = cpu_recipe(method_recipe, folder, data.dataset_dir, text_layers)
            train.update(output_dir=out_dir, train_from_scratch=True, disable_gradient_checkpointing=not gc)
            train.update(report_to="none", save_strategy="no", disable_tqdm=True)
            step = recipe_steps.RecipeStep(config, train)
            flops = recipe_steps.count_flops(step.step)  # also the warm-up: AdamW's states, lazy initialisation
            measured = recipe_steps.measure(step.step, "cpu") | {"flops": flops}
            run = {"label": config.label, "text_layers": text_layers, "gc": gc, "rows": step.rows}
            run |= {"tokens": step.tokens, "reference_rows": step.reference_rows, "static": step.static_bytes()}
            results.append(run | measured)
            step.close()
            print(f"  {shape.prefix} L={text_layers} gc={gc} {config.label}: {fmt_run(results[-1])}", flush=True)
    return results


def measure_vision_layer(shape: Shape, work_dir: Path, data: common.Assets) -> dict[str, float]:
    """Seconds and FLOPs of one more vision layer in a no-grad forward over one row (one image)."""
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from llamafactory_safeeraser.offline.cpu_recipe import CPU_DTYPE

    runs = []
    for vision_layers in (shape.vision_layers, shape.vision_layers + 1):
        folder = work_dir / f"skeleton-{shape.prefix}-v{vision_layers}"
        recipe_steps.write_skeleton(folder, shape.family, shape.size, None, vision_layers, CPU_DTYPE)
        processor = AutoProcessor.from_pretrained(folder)
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)
        model.eval()
        # the checkpoint's own chat template writes the image as its processor expects it (any family)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        with Image.open(next((data.data_dir / "img").rglob("*.png"))) as image:
            inputs = processor(images=[image.convert("RGB")], text=[text], return_tensors="pt")
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            forward = lambda inputs=inputs, model=model: model(**inputs)  # noqa: E731
            flops = recipe_steps.count_flops(forward)  # also the warm-up
            runs.append(recipe_steps.measure(forward, "cpu") | {"flops": flops})
        del model
    return {key: runs[1][key] - runs[0][key] for key in ("seconds", "flops")}


def extrapolate(
    shape: Shape, small: dict, large: dict, vision: dict, frozen_full_bytes: float, gpus: int, rate: float
) -> dict[str, Any]:
    """Full-model figures of one configuration from its runs with n and n+1 layers (see the module docstring);
    seconds on this CPU are FLOPs at ``rate`` (FLOP/s)."""
    extra_layers = shape.full_text_layers - shape.text_layers
    vision_forwards = small["rows"] + small["reference_rows"]  # a reference forward encodes its images again
    per_layer = {key: large[key] - small[key] for key in ("peak_bytes", "flops")}
    per_layer["seconds"] = per_layer["flops"] / rate
    trainable_per_layer = large["static"]["trainable"] - small["static"]["trainable"]
    adam_per_layer = large["static"]["adam"] - small["static"]["adam"]
    trainable = small["static"]["trainable"] + extra_layers * trainable_per_layer
    adam = small["static"]["adam"] + extra_layers * adam_per_layer
    frozen = frozen_full_bytes
    gradients = trainable  # one gradient per trainable parameter, in its dtype
    peak = small["peak_bytes"] + extra_layers * per_layer["peak_bytes"]
    activations = max(peak - gradients, 0.0)
    extra_vision = shape.missing_vision_layers * vision_forwards
    layer_weights = large["static"]["frozen"] - small["static"]["frozen"]  # one decoder layer, bf16
    per_gpu = {
        "ddp": frozen + trainable + adam + peak,
        "zero2": frozen + trainable + (adam + gradients) / gpus + activations,
        "zero3": (frozen + trainable + adam + gradients) / gpus + activations + layer_weights,
    }
    flops = small["flops"] + extra_layers * per_layer["flops"] + extra_vision * vision["flops"]
    return {
        "per_layer": per_layer | {"trainable_bytes": trainable_per_layer, "adam_bytes": adam_per_layer},
        "static_bytes": {"frozen": frozen, "trainable": trainable, "adam": adam},
        "step_peak_bytes": peak,
        "per_gpu_bytes": per_gpu,
        "step_flops": flops,
        "cpu_step_seconds": flops / rate,
    }


def fmt_run(run: dict) -> str:
    static = sum(run["static"].values())
    return f"static {static / GIB:.2f} GiB, step peak +{run['peak_bytes'] / GIB:.2f} GiB, {run['seconds']:.1f} s"


def print_tables(models: dict[str, Any], gpus: int) -> None:
    for prefix, result in models.items():
        shape = result["shape"]
        layers = f"measured with {shape['text_layers']} and {shape['text_layers'] + 1}"
        rate = result["achieved_gflops"]
        print(f"\n{prefix}: {shape['full_text_layers']} language layers, {layers}; full model per GPU, {gpus} GPUs")
        print(f"achieved {rate['median']:.1f} GFLOP/s (median; {rate['min']:.1f}-{rate['max']:.1f})\n")
        headers = ["config", "GC", "rows", "tokens", "per layer: step peak MiB", "per layer: s (this CPU)"]
        headers += ["full: static GiB", "full: step peak GiB", "DDP GiB", "ZeRO-2 GiB", "ZeRO-3 GiB"]
        headers += ["full: TFLOP/step", "full: s/step (this CPU)"]
        rows = []
        for config in result["configs"]:
            full = config["full"]
            row = [config["label"], "on" if config["gc"] else "off", config["rows"], config["tokens"]]
            row += [full["per_layer"]["peak_bytes"] / 2**20, full["per_layer"]["seconds"]]
            row += [sum(full["static_bytes"].values()) / GIB, full["step_peak_bytes"] / GIB]
            row += [full["per_gpu_bytes"][key] / GIB for key in ("ddp", "zero2", "zero3")]
            row += [full["step_flops"] / 1e12, full["cpu_step_seconds"]]
            rows.append(row)
        print(common.format_table(headers, rows))


def summarize(shape: Shape, vision: dict, pairs: list[tuple[dict, dict]], gpus: int) -> dict[str, Any]:
    """Every configuration's full-model figures from its two runs; time from the FLOPs at this CPU's rate.

    The rate is the median achieved FLOP/s over all the model's runs: single step times on a shared 2-core
    machine swing with its neighbours' load, so their differences (per layer) are noise, while a step's
    FLOPs are exact and its rate is a matrix-product rate that varies little between configurations.
    """
    frozen_full = 2 * parameter_count(shape, "full", "full")  # bf16 weights of the whole model
    frozen_small = 2 * parameter_count(shape, shape.text_layers, None)
    rates = [run["flops"] / run["seconds"] for pair in pairs for run in pair]
    rate = statistics.median(rates)
    configs = []
    for small, large in pairs:
        # the full model's bf16 weights in place of the shape model's (the projector's frozen copy kept)
        frozen = frozen_full + small["static"]["frozen"] - frozen_small
        full = extrapolate(shape, small, large, vision, frozen, gpus, rate)
        configs.append({"label": small["label"], "gc": small["gc"], "rows": small["rows"], "tokens": small["tokens"]})
        configs[-1] |= {"runs": [small, large], "full": full}
    achieved = {"median": rate / 1e9, "min": min(rates) / 1e9, "max": max(rates) / 1e9}
    return {"shape": dataclasses.asdict(shape), "vision_per_layer": vision, "achieved_gflops": achieved} | {
        "configs": configs
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--models", default=None, help=f"comma-separated, of {','.join(MODELS)} (quick: llava7b)")
    parser.add_argument("--configs", default=None, help="labels with checkpointing (default all; quick: SFT,GA+PD)")
    parser.add_argument(
        "--configs-without-gc",
        default=None,
        help="labels also measured without gradient checkpointing (default SFT,GD+PD,KL+PD,NPO+PD; quick: none)",
    )
    parser.add_argument("--base-layers", type=int, default=None, help="n (default: the fewest the model allows)")
    parser.add_argument("--gpus", type=int, default=2, help="GPUs the ZeRO figures shard over (the recipes': 2)")
    parser.add_argument("--recompute", type=Path, default=None, help="redo the model from an earlier JSON's runs")
    parser.add_argument("--count-static", action="store_true", help="only count the static bytes (seconds, no step)")
    args = parser.parse_args(argv)
    if args.count_static:
        print_counted_static((args.models or ",".join(MODELS)).split(","), args.gpus)
        return {}
    started = time.time()
    options = common.run_options(args, repeats=1, warmup=1)
    if args.recompute is not None:
        earlier = json.loads(args.recompute.read_text())["models"]
        models = {
            prefix: summarize(
                Shape(**model["shape"]),
                model["vision_per_layer"],
                [tuple(config["runs"]) for config in model["configs"]],
                args.gpus,
            )
            for prefix, model in earlier.items()
        }
    else:
        models = measure_models(args, options)
    print_tables(models, args.gpus)
    output = {"models": models, "gpus": args.gpus, "dtype": "bfloat16 (autocast; weights bf16, trainable fp32)"}
    common.write_results(args.out, NAME, dataclasses.replace(options, size="shape"), output, started)
    return output


def measure_models(args: argparse.Namespace, options: common.RunOptions) -> dict[str, Any]:
    prefixes = (args.models or ("llava7b" if options.quick else ",".join(MODELS))).split(",")
    every_config = ",".join(config.label for config in recipe_steps.CONFIGS)
    with_gc = (args.configs or ("SFT,GA+PD" if options.quick else every_config)).split(",")
    without_gc = (args.configs_without_gc or ("" if options.quick else "SFT,GD+PD,KL+PD,NPO+PD")).split(",")
    configs_by_gc = {
        gc: [config for config in recipe_steps.CONFIGS if config.label in labels]
        for gc, labels in ((True, with_gc), (False, without_gc))
    }
    data = common.ensure_shape_data(args.work_dir)
    models: dict[str, Any] = {}
    for prefix in prefixes:
        shape = shape_of(prefix, args.base_layers)
        vision = measure_vision_layer(shape, args.work_dir, data)
        pairs: list[tuple[dict, dict]] = []
        for gc, configs in configs_by_gc.items():
            if configs:
                small = measure_layers(shape, shape.text_layers, gc, configs, args.work_dir, data)
                large = measure_layers(shape, shape.text_layers + 1, gc, configs, args.work_dir, data)
                pairs += list(zip(small, large, strict=True))
        models[prefix] = summarize(shape, vision, pairs, args.gpus)
    return models


if __name__ == "__main__":
    main()
