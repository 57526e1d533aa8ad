"""Fused vs separate passes: one stacked forward over forget/retain/PD rows vs one forward per set.

The same trainer, model and rows run both ways (``fused_forward: true`` vs ``false``, which only
changes how the collator lays the rows out), round-robin, at several per-device batch sizes and
on two data shapes:

- ``as-is``: the synthetic benchmark, whose three sets have similar lengths;
- ``long-forget``: the forget answers repeated so that forget rows are several times longer
  than retain and PD rows, the case where stacking pads the short rows to the long ones.

One stacked pass saves per-call overhead (kernel launches, Python, one pass through the vision
tower and every layer instead of three); separate passes save padding. The tables show which
effect wins where, next to the padded-token counts that explain it.

    python benchmarks/fused_vs_separate.py [--method gd] [--batch-sizes 1,4,16]
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from llamafactory_safeeraser.fileio import atomic_directory

NAME = "fused_vs_separate"
LONG_FORGET_REPEAT = 6  # forget answers become this many copies of themselves in `long-forget`


def long_forget_datasets(assets: common.Assets, repeat: int) -> Path:
    """A copy of the LLaMA-Factory datasets whose forget answers are ``repeat`` times as long."""
    out = assets.dataset_dir.parent / f"datasets-long-forget-x{repeat}"
    if not out.is_dir():
        with atomic_directory(out) as scratch:  # an interrupted run leaves no half-written copy to reuse
            for source in assets.dataset_dir.glob("*.json"):
                rows = json.loads(source.read_text())
                if source.name == "forget.json":
                    rows = [dict(row, output=" ".join([row["output"]] * repeat)) for row in rows]
                (scratch / source.name).write_text(json.dumps(rows))
    return out


def padded_tokens(batch: dict[str, Any]) -> tuple[int, int]:
    """(padded, real) token counts of a fused batch or of all per-set batches together."""
    parts = batch["row_set_inputs"].values() if "row_set_inputs" in batch else [batch]
    return (
        sum(int(part["attention_mask"].numel()) for part in parts),
        sum(int((part["attention_mask"] > 0).sum()) for part in parts),
    )


def measure_scenario(
    assets: common.Assets, dataset_dir: Path, method: str, batch_sizes: list[int], options: common.RunOptions
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as out_dir:
        config = common.unlearn_config(
            assets, method, True, max(batch_sizes), Path(out_dir), dataset_dir=str(dataset_dir)
        )
        trainer = common.build_unlearning_trainer(config)
    model, collator = trainer.model, trainer.data_collator
    rows = []
    for batch_size in batch_sizes:
        features = common.first_features(trainer, batch_size)
        collator.fused_forward = True
        fused = collator(features)
        collator.fused_forward = False
        separate = collator(features)
        collator.fused_forward = True
        timings = common.interleaved_timings(
            {
                "fused": lambda fused=fused: trainer.training_step(model, common.fresh(fused)),
                "separate": lambda separate=separate: trainer.training_step(model, common.fresh(separate)),
            },
            options.repeats,
            options.warmup,
            before_each=lambda: model.zero_grad(set_to_none=True),
        )
        fused_padded, real = padded_tokens(fused)
        separate_padded, _ = padded_tokens(separate)
        fused_s, separate_s = common.median(timings["fused"]), common.median(timings["separate"])
        rows.append(
            {
                "batch_size": batch_size,
                "sets": list(trainer.train_dataset.row_sets),
                "real_tokens": real,
                "fused_padded_tokens": fused_padded,
                "separate_padded_tokens": separate_padded,
                "timings": {name: common.summary(values) for name, values in timings.items()},
                "separate_over_fused": separate_s / fused_s,
                "winner": "fused" if fused_s <= separate_s else "separate",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--method", default="gd", help="unlearning method (PD on; default gd: three sets)")
    parser.add_argument("--batch-sizes", default=None, help="per-device batch sizes (default 1,4,16; quick: 1,2)")
    args = parser.parse_args(argv)
    started = time.time()
    options = common.run_options(args, repeats=7, warmup=1)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,2" if options.quick else "1,4,16")).split(",")]
    assets = common.ensure_assets(args.work_dir, options.size)
    scenarios = {
        "as-is": assets.dataset_dir,
        "long-forget": long_forget_datasets(assets, LONG_FORGET_REPEAT),
    }
    results: dict[str, Any] = {"method": args.method, "batch_sizes": batch_sizes, "scenarios": {}}
    for name, dataset_dir in scenarios.items():
        results["scenarios"][name] = measure_scenario(assets, dataset_dir, args.method, batch_sizes, options)
        gc.collect()  # free the scenario's trainer and model before the next

    headers = [
        "data",
        "batch",
        "real tokens",
        "padded fused",
        "padded separate",
        "fused ms",
        "separate ms",
        "separate / fused",
        "winner",
    ]
    rows = [
        [
            name,
            r["batch_size"],
            r["real_tokens"],
            r["fused_padded_tokens"],
            r["separate_padded_tokens"],
            r["timings"]["fused"]["median_s"] * 1e3,
            r["timings"]["separate"]["median_s"] * 1e3,
            r["separate_over_fused"],
            r["winner"],
        ]
        for name, scenario in results["scenarios"].items()
        for r in scenario
    ]
    print(
        f"\nFused vs separate forward passes, {args.method.upper()}+PD, model {options.size}, "
        f"{options.repeats} repeats (medians)\n"
    )
    print(common.format_table(headers, rows))
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
