"""A paper recipe (``yaml/*.yaml``) adapted to run on its shape model on a CPU, and nothing else changed.

The shape tier (tests/e2e/test_shape_recipes.py) and the memory model (benchmarks/memory_model.py) run the
recipes this way; every replaced key is listed here with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# recipe name prefix (yaml/<prefix>_<method>.yaml) -> (family, size) of its shape model
RECIPE_SHAPES = {
    "llava7b": ("llava", "shape7b"),
    "llava13b": ("llava", "shape13b"),
    "qwen2vl": ("qwen2_vl", "shape7b"),
    "llama32v": ("mllama", "shape11b"),
    "qwen25vl": ("qwen2_5_vl", "shape7b"),
    "qwen3vl": ("qwen3_vl", "shape8b"),
    "gemma3": ("gemma3", "shape12b"),
    "internvl3": ("intern_vl", "shape8b"),
    "llavanext": ("llava_next", "shape7b"),
}
# CPU autocast cannot mix LLaVA-1.5's released float16 weights into bf16 operations, and bf16 is what the
# recipes train in: shape models for CPU runs are written in bfloat16
CPU_DTYPE = "bfloat16"


def shape_of(recipe: str | Path) -> tuple[str, str]:
    """(family, size) of the shape model a recipe's model is released at, from the recipe's file name."""
    return RECIPE_SHAPES[Path(recipe).stem.split("_")[0]]


def cpu_recipe(
    recipe: dict[str, Any], model_dir: str | Path, dataset_dir: str | Path, text_layers: int, max_steps: int = 2
) -> dict[str, Any]:
    """The recipe's keys with only the model, its layers, the folders, the steps and GPU-only settings replaced.

    ``output_dir`` stays the recipe's: set it. bf16 stays (``use_cpu`` lets transformers autocast on the CPU).
    """
    config = dict(recipe)
    config.pop("deepspeed", None)  # one CPU process, no DeepSpeed install (ZeRO vs DDP: scripts/test.sh deepspeed)
    config.update(
        model_name_or_path=str(model_dir),
        dataset_dir=str(dataset_dir),
        use_cpu=True,  # transformers refuses bf16 without a GPU unless told to run on the CPU (autocast there)
        max_steps=max_steps,  # steps: a few optimizer steps (the recipes' warm-up step has learning rate 0)
        gradient_accumulation_steps=1,
        logging_steps=1,
        preprocessing_num_workers=1,  # 2 cores; 16 processes would only add start-up time
        overwrite_cache=True,
    )
    if "rmu_layer" in config:  # layers: RMU steers layer 7 of 32; the cut model's last layer instead
        config["rmu_layer"] = text_layers - 1
    return config
