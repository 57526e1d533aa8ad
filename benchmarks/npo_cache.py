"""NPO's reference log-probs: cached after the first epoch vs recomputed every step.

With ``cache_reference_logps: true`` (the default) each forget row's log pi_ref(y|x) is computed
the first time the row is seen and reused in later epochs; with ``false`` every step runs the
reference (the model with its adapter disabled) over the forget rows again. One NPO+PD trainer
runs the same batch both ways, round-robin; "cached" is the state of every step after the first
epoch. The cached values are also checked against a fresh reference pass.

    python benchmarks/npo_cache.py [--batch-size 4] [--epochs 10]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import common
import torch

NAME = "npo_cache"


def reference_logps(trainer: Any, batch: dict[str, Any], cache: dict | None) -> torch.Tensor:
    """log pi_ref(y|x) of the batch's forget rows, from ``cache`` (None: a fresh reference pass)."""
    from llamafactory_safeeraser.unlearn.outputs import StepOutputs

    trainer.reference_logp_cache = cache
    inputs = common.fresh(batch)
    view = StepOutputs(inputs["row_ids"], {}, {}, {}, inputs["reference_inputs"])  # the reference side only
    with torch.no_grad():
        return trainer.reference_sequence_logps(view, "forget")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=None, help="forget rows per step (default 4; quick: 2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs for the whole-run projection (paper: 10)")
    args = parser.parse_args(argv)
    started = time.time()
    options = common.run_options(args, repeats=15, warmup=3)
    batch_size = args.batch_size or (2 if options.quick else 4)
    assets = common.ensure_assets(args.work_dir, options.size)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = common.build_unlearning_trainer(common.unlearn_config(assets, "npo", True, batch_size, Path(out_dir)))
    model = trainer.model
    batch = trainer.data_collator(common.first_features(trainer, batch_size))
    cache = trainer.reference_logp_cache
    if cache is None:
        raise RuntimeError("cache_reference_logps is off in the benchmark config")

    def step(with_cache: bool) -> None:
        trainer.reference_logp_cache = cache if with_cache else None  # None is what `false` sets
        trainer.training_step(model, common.fresh(batch))

    step(True)  # the first epoch: fills the cache for these rows
    timings = common.interleaved_timings(
        {"recomputed": lambda: step(False), "cached": lambda: step(True)},
        options.repeats,
        options.warmup,
        before_each=lambda: model.zero_grad(set_to_none=True),
    )
    # the reference never changes: a fresh reference pass must reproduce the cached values
    cached_values = reference_logps(trainer, batch, cache)
    fresh_values = reference_logps(trainer, batch, None)
    trainer.reference_logp_cache = cache
    max_difference = float((fresh_values - cached_values).abs().max())

    recomputed_s, cached_s = common.median(timings["recomputed"]), common.median(timings["cached"])
    saving_s = recomputed_s - cached_s
    epochs = args.epochs
    run_saving = saving_s * (epochs - 1) / (recomputed_s * epochs)  # epoch 1 computes the cache either way
    results = {
        "method": "npo",
        "pd": True,
        "batch_size": batch_size,
        "timings": {name: common.summary(values) for name, values in timings.items()},
        "saving_per_step_s": saving_s,
        "saving_per_step_fraction": saving_s / recomputed_s,
        "epochs": epochs,
        "saving_whole_run_fraction": run_saving,
        "cached_rows": len(cache),
        "max_abs_difference_cached_vs_fresh": max_difference,
    }
    print(
        f"\nNPO+PD reference log-probs, batch size {batch_size}, model {options.size}, "
        f"{options.repeats} repeats (medians)\n"
    )
    print(
        common.format_table(
            ["reference log-probs", "step ms", "saving per step", f"saving over {epochs} epochs"],
            [
                ["recomputed every step (cache_reference_logps: false)", recomputed_s * 1e3, "-", "-"],
                [
                    "cached after epoch 1 (default)",
                    cached_s * 1e3,
                    f"{saving_s * 1e3:.1f} ms ({saving_s / recomputed_s:.1%})",
                    f"{run_saving:.1%}",
                ],
            ],
        )
    )
    print(f"cached vs fresh reference log-probs: max |difference| {max_difference:.2e}")
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
