"""Step cost: each unlearning method (with and without PD) vs LLaMA-Factory's own SFT step on the same tokens.

For every method x {no PD, PD} one trainer is built as `llamafactory-cli train` would build it
(LoRA with the paper's settings). The same model then runs, round-robin:

- the unlearning step: ``trainer.training_step`` on the stacked forget/retain/PD batch;
- LLaMA-Factory's SFT step: ``CustomSeq2SeqTrainer.training_step`` on the same rows collated
  as plain SFT rows by LLaMA-Factory's SFT collator (same token ids, same padding);
- for KL and NPO, one no-grad forward of the reference (adapter disabled) over the rows the
  method's reference needs, which sets their target: 1.10 + that forward / the SFT step.

NPO's reference log-prob cache is cleared before every timed step, so its numbers are the
first-epoch cost (later epochs: see npo_cache.py). The floor is the FLOP count of the step
(``common.step_flops``: parameters x tokens, no recomputation) at the machine's best measured
matmul rate; the FLOPs the step actually executes (torch's FlopCounterMode) are reported too.

    python benchmarks/step_cost.py [--batch-size 4] [--repeats 11] [--profile]
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import torch

from llamafactory_safeeraser.demo.settings import display_name

NAME = "step_cost"
TARGET = 1.10


def profile_table(fn: Any, before: Any, row_limit: int = 15) -> str:
    """torch profiler: the top ops of one call by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    before()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def reference_forward(trainer: Any, batch: dict[str, Any], row_set: str) -> None:
    """What KL/NPO add to a step: the reference (adapter disabled) over one set's rows, no gradient."""
    inputs = dict(batch["reference_inputs"][row_set])
    inputs.pop("labels")
    with torch.no_grad(), trainer.reference_model_context(trainer.model) as reference:
        reference(**inputs)


def measure_config(
    assets: common.Assets, method: str, with_pd: bool, batch_size: int, options: common.RunOptions, profile: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out_dir:
        config = common.unlearn_config(assets, method, with_pd, batch_size, Path(out_dir))
        trainer = common.build_unlearning_trainer(config)
    model = trainer.model
    baseline = common.SFTBaseline(trainer)
    features = common.first_features(trainer, batch_size)
    unlearning_batch = trainer.data_collator(features)
    sft_batch = baseline.batch(features)
    if not torch.equal(unlearning_batch["input_ids"], sft_batch["input_ids"]):
        raise RuntimeError(f"{method}: the SFT baseline does not see the same tokens as the unlearning step")

    def before_each() -> None:
        model.zero_grad(set_to_none=True)
        if trainer.reference_logp_cache is not None:
            trainer.reference_logp_cache.clear()  # NPO: every timed step pays its reference pass

    candidates = {
        "unlearning_step": lambda: trainer.training_step(model, common.fresh(unlearning_batch)),
        "sft_step": lambda: baseline.trainer.training_step(model, common.fresh(sft_batch)),
    }
    reference_row_set = trainer.reference_row_sets[0] if trainer.reference_row_sets else None
    if reference_row_set is not None:
        candidates["reference_forward"] = lambda: reference_forward(trainer, unlearning_batch, reference_row_set)
    timings = common.interleaved_timings(candidates, options.repeats, options.warmup, before_each)
    medians = {name: common.median(values) for name, values in timings.items()}

    ratio = medians["unlearning_step"] / medians["sft_step"]
    reference_share = medians["reference_forward"] / medians["sft_step"] if reference_row_set else 0.0
    target = TARGET + reference_share
    floor = common.step_flops(model, sft_batch)
    if reference_row_set is not None:
        reference_rows = unlearning_batch["reference_inputs"][reference_row_set]
        floor["reference_forward_flops"] = common.step_flops(model, reference_rows)["forward_flops"]
        floor["total_flops"] += floor["reference_forward_flops"]
    executed = {}
    for name in ("unlearning_step", "sft_step"):
        before_each()
        executed[name] = common.executed_flops(candidates[name])
    result: dict[str, Any] = {
        "method": method,
        "pd": with_pd,
        "label": display_name(method + ("_pd" if with_pd else "")),
        "sets": list(trainer.train_dataset.row_sets),
        "rows": int(sft_batch["input_ids"].shape[0]),
        "timings": {name: common.summary(values) for name, values in timings.items()},
        "ratio": ratio,
        "reference_group": reference_row_set,  # the key of the stored results (benchmarks/results)
        "reference_forward_share": reference_share,
        "target": target,
        "met": ratio <= target,
        "flops": floor,
        "executed_flops": executed,
        "achieved_gflops": {name: executed[name] / medians[name] / 1e9 for name in executed},
    }
    if profile:
        result["profile"] = {name: profile_table(candidates[name], before_each) for name in executed}
    return result


def print_table(configs: list[dict[str, Any]], batch_size: int, options: common.RunOptions, rate: dict) -> None:
    headers = [
        "config",
        "rows",
        "tokens real/padded",
        "SFT ms",
        "unlearning ms",
        "ratio",
        "ref. fwd ms",
        "target",
        "met",
        "floor ms",
        "unlearning / floor",
        "achieved GFLOP/s",
    ]
    rows = []
    for r in configs:
        ms = {name: summary["median_s"] * 1e3 for name, summary in r["timings"].items()}
        rows.append(
            [
                r["label"],
                r["rows"],
                f"{r['flops']['real_tokens']}/{r['flops']['padded_tokens']}",
                ms["sft_step"],
                ms["unlearning_step"],
                r["ratio"],
                ms.get("reference_forward", "-"),
                r["target"],
                "yes" if r["met"] else "NO",
                r["floor_s"] * 1e3,
                r["unlearning_over_floor"],
                r["achieved_gflops"]["unlearning_step"],
            ]
        )
    shape = rate.get("model_shape")
    at_shape = f", {shape['gflops']:.1f} at the model's MLP shape {shape['m_k_n']}" if shape else ""
    print(
        f"\nStep cost, {batch_size} forget rows per step, model {options.size}, {options.repeats} repeats (medians); "
        f"matmul peak {rate['gflops']:.1f} GFLOP/s{at_shape}\n"
    )
    print(common.format_table(headers, rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=None, help="forget rows per step (default 4; quick: 2)")
    parser.add_argument("--methods", default=",".join(common.METHODS), help="comma-separated method names")
    parser.add_argument("--profile", action="store_true", help="also print torch-profiler top ops per config")
    args = parser.parse_args(argv)
    started = time.time()
    options = common.run_options(args, repeats=11, warmup=2)
    batch_size = args.batch_size or (2 if options.quick else 4)
    assets = common.ensure_assets(args.work_dir, options.size)

    configs = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for with_pd in (False, True):
            result = measure_config(assets, method, with_pd, batch_size, options, args.profile)
            gc.collect()  # the configuration's trainer and model hold reference cycles; free them before the next
            configs.append(result)
            ms = {name: summary["median_s"] * 1e3 for name, summary in result["timings"].items()}
            print(
                f"{result['label']:>7}: unlearning {ms['unlearning_step']:.1f} ms, SFT {ms['sft_step']:.1f} ms, "
                f"ratio {result['ratio']:.3f} (target {result['target']:.3f})",
                flush=True,
            )
            for name, table in result.get("profile", {}).items():
                print(f"\n{result['label']} {name}: top ops by self CPU time\n{table}")

    # the machine's matmul rate, measured in this run: the peak, and one GEMM of the model's MLP on the step's tokens
    core = configs[-1]
    text_config = common.text_config(assets.model_dir)
    mlp_shape = (core["flops"]["padded_tokens"], text_config["hidden_size"], text_config["intermediate_size"])
    rate = common.measure_matmul_rate(sizes=(256,) if options.quick else (1024, 2048), model_shape=mlp_shape)
    for result in configs:
        result["floor_s"] = result["flops"]["total_flops"] / (rate["gflops"] * 1e9)
        result["unlearning_over_floor"] = result["timings"]["unlearning_step"]["median_s"] / result["floor_s"]
        result["sft_over_floor"] = result["timings"]["sft_step"]["median_s"] / result["floor_s"]

    print_table(configs, batch_size, options, rate)
    results = {"batch_size": batch_size, "target": TARGET, "matmul": rate, "configs": configs}
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
