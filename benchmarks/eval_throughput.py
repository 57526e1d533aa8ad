"""Evaluation throughput: the lm-eval path (batched) vs a per-sample ``model.generate`` loop like the reference's.

- lm-eval path: ``Evaluator.evaluate(run)`` on the ``safeeraser`` group, i.e. lm-eval's
  ``hf-multimodal`` model generating ``--batch-size`` prompts per call, plus scoring (rule judge)
  and writing results, timed end to end including the model load (the Evaluator, like
  ``evaluate_runs``, is built once per process);
- per-sample loop: load the model and processor, then for each of the same (prompt, image)
  pairs, as the reference evaluation script does: open the image, run the processor, call
  ``model.generate`` on that one sample and decode; also timed including the model load.

Both sample with the same settings (temperature 1.0, top-p 0.9, the same max new tokens) on the
prompts lm-eval logged; the mean generated tokens per response are reported for both. A warm-up
round pays one-time lazy imports first; then the paths alternate for ``--repeats`` rounds per
generation length and the medians are compared.

    python benchmarks/eval_throughput.py [--batch-size 32] [--limit 4] [--max-new-tokens 32,128]
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import common

NAME = "eval_throughput"
TARGET = 5.0
SAMPLING = {"do_sample": True, "temperature": 1.0, "top_p": 0.9}  # the SafeEraser reference's, as the tasks set it


def run_lm_eval(evaluator: Any, model_dir: Path, out_dir: Path) -> tuple[float, list[dict[str, Any]]]:
    """Time one full ``safeeraser`` evaluation of a model; return the seconds and the logged samples."""
    from llamafactory_safeeraser.evaluation import RunSpec

    start = time.perf_counter()
    result = evaluator.evaluate(RunSpec("benchmark", model_dir), out_dir)
    seconds = time.perf_counter() - start
    samples = [json.loads(line) for line in (result.folder / "samples.jsonl").read_text().splitlines()]
    return seconds, samples


def run_per_sample_loop(
    model_dir: Path, samples: list[dict[str, Any]], max_new_tokens: int, seed: int
) -> tuple[float, list[str]]:
    """The reference's way: load model and processor, then one ``generate`` call per (prompt, image)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    start = time.perf_counter()
    torch.manual_seed(seed)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    responses = generate_each(model, processor, samples, max_new_tokens)
    return time.perf_counter() - start, responses


def generate_each(model: Any, processor: Any, samples: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
    """Batch size 1: per sample open the image, run the processor, ``generate`` and decode."""
    import torch
    from PIL import Image

    responses = []
    with torch.inference_mode():
        for sample in samples:
            with Image.open(sample["image_path"]) as image:
                rgb = image.convert("RGB")
            inputs = processor(images=[rgb], text=[sample["prompt"]], return_tensors="pt").to(model.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, **SAMPLING)
            new_tokens = output[0, inputs["input_ids"].shape[1] :]
            responses.append(processor.tokenizer.decode(new_tokens, skip_special_tokens=True))
    return responses


def mean_tokens(model_dir: Path, texts: list[str]) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts) / max(len(texts), 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.base_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=None, help="lm-eval batch size (default 32; quick: 8)")
    parser.add_argument(
        "--limit", type=int, default=None, help="documents per category subtask, 24 of them (default 4; quick: 1)"
    )
    parser.add_argument(
        "--max-new-tokens",
        default=None,
        help="comma-separated generation lengths (default 32,128; quick: 4; the reference: 512)",
    )
    args = parser.parse_args(argv)
    started = time.time()
    options = common.run_options(args, repeats=2, warmup=1)
    batch_size = args.batch_size or (8 if options.quick else 32)
    limit = args.limit or (1 if options.quick else 4)
    lengths = [int(n) for n in (args.max_new_tokens or ("4" if options.quick else "32,128")).split(",")]
    assets = common.ensure_assets(args.work_dir, options.size)

    from llamafactory_safeeraser.evaluation import EvalSettings, Evaluator, JudgeConfig

    settings = EvalSettings(
        data_dir=assets.data_dir,
        judge=JudgeConfig("rule"),
        harmful_samples=1,
        limit=limit,
        batch_size=batch_size,
        seed=233,
        device="cpu",
    )
    # one Evaluator per length, built once, as evaluate_runs builds one for several models
    evaluators = {n: Evaluator(dataclasses.replace(settings, max_gen_toks=n)) for n in lengths}
    timings: dict[int, dict[str, list[float]]] = {n: {"lm_eval": [], "per_sample_loop": []} for n in lengths}
    responses: dict[int, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as out_dir:
        if options.warmup:  # one-time lazy imports (lm-eval's model classes, template code) before any timing
            warmup = Evaluator(dataclasses.replace(settings, limit=1, max_gen_toks=lengths[0]))
            _, warmup_samples = run_lm_eval(warmup, assets.model_dir, Path(out_dir) / "warmup")
            run_per_sample_loop(assets.model_dir, warmup_samples, lengths[0], seed=settings.seed)
        for round_index in range(options.repeats):
            for n in lengths:
                seconds, samples = run_lm_eval(evaluators[n], assets.model_dir, Path(out_dir) / f"{n}-{round_index}")
                timings[n]["lm_eval"].append(seconds)
                seconds, loop_responses = run_per_sample_loop(assets.model_dir, samples, n, seed=settings.seed)
                timings[n]["per_sample_loop"].append(seconds)
                responses[n] = {"lm_eval": [s["response"] for s in samples], "per_sample_loop": loop_responses}
                print(
                    f"round {round_index + 1}, {n} new tokens: lm-eval {timings[n]['lm_eval'][-1]:.1f} s, "
                    f"per-sample loop {seconds:.1f} s, {len(samples)} responses",
                    flush=True,
                )

    rows = []
    for n in lengths:
        count = len(responses[n]["lm_eval"])
        rates = {path: count / common.median(values) for path, values in timings[n].items()}
        speedup = rates["lm_eval"] / rates["per_sample_loop"]
        rows.append(
            {
                "max_new_tokens": n,
                "responses": count,
                "mean_generated_tokens": {
                    path: mean_tokens(assets.model_dir, texts) for path, texts in responses[n].items()
                },
                "timings": {path: common.summary(values) for path, values in timings[n].items()},
                "responses_per_s": rates,
                "speedup": speedup,
                "met": speedup >= TARGET,
            }
        )
    results = {
        "batch_size": batch_size,
        "limit_per_task": limit,
        "sampling": SAMPLING,
        "target": TARGET,
        "lengths": rows,
        "met_at_longest": rows[-1]["met"],  # the length closest to the reference's 512
    }
    print(f"\nEvaluation throughput, model {options.size}, batch {batch_size}, {options.repeats} rounds (medians)\n")
    table = []
    for row in rows:
        seconds = {path: summary["median_s"] for path, summary in row["timings"].items()}
        tokens = row["mean_generated_tokens"]
        table.append(
            [
                row["max_new_tokens"],
                row["responses"],
                f"{seconds['per_sample_loop']:.1f} s, {row['responses_per_s']['per_sample_loop']:.2f}/s",
                f"{seconds['lm_eval']:.1f} s, {row['responses_per_s']['lm_eval']:.2f}/s",
                f"{tokens['per_sample_loop']:.1f} / {tokens['lm_eval']:.1f}",
                row["speedup"],
                "met" if row["met"] else "MISSED",
            ]
        )
    headers = [
        "max new tokens",
        "responses",
        "per-sample loop (batch 1)",
        f"lm-eval (batch {batch_size})",
        "tokens/response (loop / lm-eval)",
        "speed-up",
        f"target >= {TARGET:.0f}x",
    ]
    print(common.format_table(headers, table))
    common.write_results(args.out, NAME, options, results, started)
    return results


if __name__ == "__main__":
    main()
