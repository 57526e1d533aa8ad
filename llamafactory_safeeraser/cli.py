"""The ``safeeraser`` command: data, tiny models, evaluation, reports and the CPU demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .data.records import SD_IMAGE_QUESTIONS
from .errors import USAGE_ERROR_EXIT_CODE, SafeEraserError
from .offline.tiny_models.sizes import ALL_SIZES, FAMILY_SIZES


def _make_tiny_model(args: argparse.Namespace) -> None:
    from .offline.tiny_models import write_tiny_model

    count = write_tiny_model(
        args.out,
        family=args.family,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
        text_layers=args.text_layers,
        vision_layers=args.vision_layers,
        dtype=args.dtype,
    )
    print(f"wrote {args.family}/{args.size} model with {count:,} parameters to {args.out}")


def _make_demo_data(args: argparse.Namespace) -> None:
    from .offline.synthetic import write_synthetic_benchmark

    counts = write_synthetic_benchmark(args.out, args.images_per_concept, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote synthetic SafeEraser data to {args.out}: " + ", ".join(f"{k} {v} records" for k, v in counts.items()))


def _prepare(args: argparse.Namespace) -> None:
    from .data.prepare import prepare_datasets

    prepared = prepare_datasets(
        args.train,
        args.out,
        args.prefix,
        args.refusals,
        args.seed,
        args.overwrite,
        pd_question=args.pd_question,
        capitalize=args.capitalize,
    )
    sizes = ", ".join(f"{prepared.names[split]}={n}" for split, n in prepared.sizes.items())
    print(f"wrote LLaMA-Factory datasets to {prepared.out_dir} (dataset_dir): {sizes}")


def _validate(args: argparse.Namespace) -> None:
    from .data.records import read_benchmark

    for path in args.files:
        records = read_benchmark(path)
        pairs = sum(len(r.unsafe_pairs) for r in records)
        print(f"{path}: {len(records)} records, {pairs} harmful questions: OK")


def _eval(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .evaluation.judges import JudgeConfig
    from .evaluation.results import RunSpec
    from .evaluation.runner import EvalSettings, evaluate_runs

    model = Path(args.model)
    name = args.name or (Path(args.adapter).name if args.adapter else model.name)
    judge = JudgeConfig.from_metadata(
        {
            "judge": args.judge,
            "judge_model": args.judge_model,
            "judge_base_url": args.judge_base_url,
            "judge_cache": args.judge_cache,
        }
    )
    settings = EvalSettings(
        data_dir=args.data,
        judge=judge,
        harmful_samples=args.harmful_samples,
        max_gen_toks=args.max_gen_toks,
        limit=args.limit,
        batch_size=args.batch_size,
        template=args.template,
        image_max_pixels=args.image_max_pixels,
        image_min_pixels=args.image_min_pixels,
        sarr_question=args.sarr_question,
        seed=args.seed,
        device=args.device,
    )

    def report_progress(result) -> None:  # a RunResult
        summary = result.summary["summary"]
        shown = ", ".join(f"{key} {'n/a' if v is None else f'{100 * v:.1f}%'}" for key, v in summary.items())
        print(f"{result.run.name}: {shown} -> {result.folder}")

    evaluate_runs([RunSpec(name, model, args.adapter)], settings, args.out, progress=report_progress)
    print(f"report: {Path(args.out) / 'report.md'}")


def _method_keys(args: argparse.Namespace) -> None:
    from .unlearn.params import markdown_table
    from .unlearn.registry import all_methods

    print(markdown_table(all_methods()))


def _report(args: argparse.Namespace) -> None:
    from .evaluation.report import write_report

    path = write_report(args.runs, args.out)
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .demo import DemoSettings, run_demo

    recipes = Path(args.recipes) if args.recipes else None
    settings = DemoSettings(out_dir=Path(args.out), seed=args.seed, parallel=args.parallel, recipe_dir=recipes)
    report = run_demo(settings)
    print(report.read_text(encoding="utf-8"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeeraser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("make-tiny-model", _make_tiny_model, "write a randomly initialised checkpoint built offline")
    sizes = "; ".join(f"{family}: {', '.join(sizes)}" for family, sizes in FAMILY_SIZES.items())
    p.add_argument("--family", default="llava", choices=list(FAMILY_SIZES))
    p.add_argument(
        "--size", default="tiny", choices=list(ALL_SIZES), help=f"{sizes} (shape*: a released model's exact shape)"
    )
    layers_help = "shape sizes: {} layers to keep, a number or 'full' (default: the fewest the architecture allows)"
    p.add_argument("--text-layers", default=None, help=layers_help.format("language-model"))
    p.add_argument("--vision-layers", default=None, help=layers_help.format("vision-encoder"))
    p.add_argument(
        "--dtype",
        default=None,
        help="shape sizes: weight dtype (default: the released checkpoint's; CPU runs of llava need bfloat16)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")

    p = command("make-demo-data", _make_demo_data, "write a synthetic benchmark in the SafeEraser format")
    p.add_argument("--out", required=True)
    p.add_argument("--images-per-concept", type=int, default=4)
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--overwrite", action="store_true")

    p = command("prepare", _prepare, "convert SafeEraser JSON into LLaMA-Factory datasets")
    p.add_argument("--train", required=True, help="all_train.json (the forget data)")
    p.add_argument("--out", required=True, help="output folder; use it as `dataset_dir`")
    p.add_argument("--prefix", default="safeeraser", help="dataset name prefix in dataset_info.json")
    p.add_argument("--refusals", default=None, help="file of refusal answers for PO, one per line")
    p.add_argument(
        "--pd-question",
        default="harmful",
        choices=list(SD_IMAGE_QUESTIONS),
        help="question of the prompt-decouple rows: the harmful one (as the reference) or a record's sd_question",
    )
    p.add_argument(
        "--capitalize",
        action="store_true",
        help="lower-case questions and answers after their first letter, as the reference's data loader does",
    )
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--overwrite", action="store_true")

    p = command("demo", _demo, "the CPU demo: SafeEraser's finding in miniature (about 7 minutes on 2 cores)")
    p.add_argument("--out", default="demo_out", help="output folder; finished steps are reused on a re-run")
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--parallel", type=int, default=2, help="unlearning runs trained at the same time")
    p.add_argument("--recipes", default=None, help="folder of the tiny_*.yaml recipes (default: the installed yaml/)")

    p = command("validate", _validate, "check SafeEraser files and report the first problem")
    p.add_argument("files", nargs="+")

    p = command("eval", _eval, "evaluate a model (plus LoRA adapter) on the SafeEraser lm-eval tasks")
    p.add_argument("--model", required=True, help="base model folder (Hugging Face format)")
    p.add_argument("--adapter", default=None, help="PEFT/LoRA adapter folder, e.g. a LLaMA-Factory output_dir")
    p.add_argument("--name", default=None, help="run name in the report (default: adapter or model folder name)")
    p.add_argument("--data", required=True, help="folder holding all_train.json and all_val.json")
    p.add_argument("--judge", default="rule", choices=["rule", "hf", "openai"])
    p.add_argument("--judge-model", default=None, help="hf: local model folder; openai: served model name")
    p.add_argument("--judge-base-url", default=None, help="openai: e.g. http://127.0.0.1:8000/v1 (key: env only)")
    p.add_argument("--judge-cache", default=None, help="sqlite file of judge replies ('off' disables)")
    p.add_argument("--out", required=True, help="output folder: OUT/<name>/results.json, samples.jsonl, report.md")
    p.add_argument("--harmful-samples", type=int, default=3, help="responses sampled per harmful question")
    p.add_argument("--max-gen-toks", type=int, default=None, help="new tokens per response (default 512)")
    p.add_argument("--limit", type=int, default=None, help="documents per task, for quick runs")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--template", default="llava", help="LLaMA-Factory template the model was trained with")
    p.add_argument("--image-max-pixels", type=int, default=None, help="the training YAML's image_max_pixels")
    p.add_argument("--image-min-pixels", type=int, default=None, help="the training YAML's image_min_pixels")
    p.add_argument(
        "--sarr-question",
        default="harmful",
        choices=list(SD_IMAGE_QUESTIONS),
        help="SARR asks this about the SD image: the harmful question (as the reference) or a record's sd_question",
    )
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")

    command(
        "method-keys",
        _method_keys,
        "print the YAML keys the registered unlearning methods declare (a Markdown table, as in docs/training.md)",
    )

    p = command("report", _report, "compare evaluated runs in one report.md (plus a PNG plot)")
    p.add_argument("--runs", nargs="+", required=True, help="run folders written by `safeeraser eval`")
    p.add_argument("--out", required=True, help="report path, e.g. report.md (the plot goes beside it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (SafeEraserError, FileExistsError) as err:
        print(f"safeeraser: error: {err}", file=sys.stderr)
        return USAGE_ERROR_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
