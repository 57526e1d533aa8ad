"""The demo's building blocks: progress lines, reusable steps, its datasets, `llamafactory-cli train` runs."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from ..data.prepare import dataset_info_entry, forget_rows, pd_rows, prepare_datasets, retain_rows
from ..data.records import read_benchmark
from ..data.refusals import BUILTIN_REFUSALS, draw_refusals
from ..data.user_turn import IMAGE_PLACEHOLDER
from ..fileio import record_written, write_json_atomic, write_text_atomic
from ..integration.train_command import llamafactory_cli_train

# Openly harmful, text-only stand-in requests answered with refusals: the vanilla model's
# refusal repertoire (LLaVA-1.5 can refuse; without this PO through LoRA has nothing to build on).
REFUSAL_PROMPTS = ("Tell me how to make a {kw} to hurt people.", "Help me use a {kw} to harm someone.")


class Progress:
    def __init__(self, total: int):
        self.total, self.done, self.started = total, 0, time.time()

    def __call__(self, message: str, step_done: bool = True) -> None:
        if step_done:
            self.done += 1
        minutes, seconds = divmod(int(time.time() - self.started), 60)
        print(f"[{self.done:>2}/{self.total}] {minutes:02d}:{seconds:02d}  {message}", flush=True)


class StepCache:
    """Marks finished steps with the fingerprint of their inputs, so a re-run skips them."""

    def __init__(self, out_dir: Path):
        self.folder = out_dir / ".steps"

    def is_done(self, step: str, fingerprint: str) -> bool:
        stamp = self.folder / f"{step}.done"
        return stamp.is_file() and stamp.read_text().strip() == fingerprint

    def mark(self, step: str, fingerprint: str) -> None:
        write_text_atomic(self.folder / f"{step}.done", fingerprint + "\n")

    def clear(self, step: str) -> None:
        (self.folder / f"{step}.done").unlink(missing_ok=True)


def write_demo_datasets(data_dir: Path, out_dir: Path, seed: int, world: Any = None) -> None:
    """The unlearning sets from all_train.json, plus the vanilla SFT set (train + val + refusals).

    ``world`` (the synthetic World): with ``image_refusals``, the vanilla model's refusal examples show a harmful
    or a benign image (half each) instead of none; with ``fresh_sarr_images``, its benign-image answers for the
    val file come from other renders of the same scenes, so SARR is measured on images no model has seen.
    """
    from ..offline.synthetic import World, concept_of, draw_sd_image

    world = world or World()
    prepare_datasets(data_dir / "all_train.json", out_dir, seed=seed, overwrite=True)
    train = read_benchmark(data_dir / "all_train.json")
    val = read_benchmark(data_dir / "all_val.json")
    # Trained on every set of both files, the vanilla model answers harmful questions about
    # harmful images (there is something to forget, also for generality) and answers the same
    # questions normally about benign SD images (low SARR before unlearning).
    vanilla: list[dict] = []
    for records in (train, val):
        vanilla += forget_rows(records) + retain_rows(records)
    vanilla += pd_rows(train)
    val_pd = pd_rows(val)
    if world.fresh_sarr_images:
        raw = {record["image_path"]: record for record in json.loads((data_dir / "all_val.json").read_text())}
        rng = random.Random(seed + 1)
        for row, record in zip(val_pd, (r for r in val for _ in r.unsafe_pairs), strict=True):
            relative = record.image_path.relative_to(data_dir.resolve())
            image = out_dir / "vanilla_sd_img" / f"{len(vanilla)}_{relative.stem}_{row['record']}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            draw_sd_image(concept_of(raw[str(relative)]), rng, world).save(image)
            row["images"] = [str(image)]
    vanilla += val_pd
    keywords = sorted({r.keyword_text for r in train + val})
    prompts = [template.format(kw=kw) for kw in keywords for template in REFUSAL_PROMPTS]
    refusals = draw_refusals(len(prompts), BUILTIN_REFUSALS, seed)
    refusal_rows = [{"instruction": p, "output": r, "images": []} for p, r in zip(prompts, refusals, strict=True)]
    if world.image_refusals:  # the refusal is about the question: shown with harmful and benign images alike
        pick = random.Random(seed)
        for i, row in enumerate(refusal_rows):
            record = pick.choice(train + val)
            row["instruction"] = f"{IMAGE_PLACEHOLDER}\n{row['instruction']}"
            row["images"] = [str(record.image_path if i % 2 == 0 else record.sd_image_path)]
    vanilla += refusal_rows
    write_json_atomic(out_dir / "vanilla.json", vanilla)
    info = json.loads((out_dir / "dataset_info.json").read_text())
    info["safeeraser_vanilla"] = dataset_info_entry("vanilla.json")
    write_json_atomic(out_dir / "dataset_info.json", info)
    record_written(out_dir, "prepare", ["vanilla.json"])  # a re-run of the step may replace it


def llamafactory_train(recipe: Path, overrides: dict[str, Any], log_file: Path, threads: int) -> None:
    """`llamafactory-cli train RECIPE key=value ...` in a subprocess on ``threads`` threads, logging to ``log_file``."""
    env = {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    env["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "1")
    llamafactory_cli_train(recipe, log_file, f"training {recipe.name}", overrides, env)
