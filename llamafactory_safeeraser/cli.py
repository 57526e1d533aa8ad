"""The ``safeeraser`` command: data, tiny models, evaluation, reports and the CPU demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .data.records import SD_IMAGE_QUESTIONS
from .demo.settings import DEFAULT_RELEARN, DEFAULT_SEEDS
from .errors import USAGE_ERROR_EXIT_CODE, SafeEraserError, debug_mode
from .evaluation.config import EVAL_KEYS, REPORT_KEYS, SPECIFICITY_KEYS
from .offline.tiny_models.sizes import ALL_SIZES, FAMILY_SIZES
from .options import add_arguments
from .relearn.settings import RelearnCommand
from .respond.settings import RespondSettings


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
    from .data.records import check_benchmark

    problems = 0
    for path in args.files:
        records, errors = check_benchmark(path)
        for error in errors:
            print(f"safeeraser: error: {error}", file=sys.stderr)
        problems += len(errors)
        if not errors:
            pairs = sum(len(r.unsafe_pairs) for r in records)
            print(f"{path}: {len(records)} records, {pairs} harmful questions: OK")
    if problems:
        raise SafeEraserError(f"{problems} problem(s) in {len(args.files)} file(s)")


def _eval(args: argparse.Namespace) -> None:
    from .evaluation.config import EVAL_KEYS, eval_job
    from .evaluation.runner import evaluate_runs

    job = eval_job(_config_values(args, EVAL_KEYS))

    def report_progress(result) -> None:  # a RunResult
        summary = result.summary["summary"]
        shown = ", ".join(f"{key} {'n/a' if v is None else f'{100 * v:.1f}%'}" for key, v in summary.items())
        print(f"{result.run.name}: {shown} -> {result.folder}")

    evaluate_runs([job.run], job.settings, job.output_dir, progress=report_progress)
    print(f"report: {job.output_dir / 'report.md'}")


def _specificity(args: argparse.Namespace) -> None:
    from .evaluation.config import SPECIFICITY_KEYS, specificity_job
    from .evaluation.specificity import evaluate_specificity

    run, settings, output_dir = specificity_job(_config_values(args, SPECIFICITY_KEYS))
    path = evaluate_specificity(run, settings, output_dir)
    print(f"wrote {path}")


def _config_values(args: argparse.Namespace, keys) -> dict:
    """The keys' values from CONFIG.yaml, key=value overrides and flags (flags win)."""
    from .evaluation.config_keys import CONFIG_SUFFIXES, read_config

    flags = {key.name: getattr(args, key.name) for key in keys if hasattr(args, key.name)}
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith(CONFIG_SUFFIXES):  # key=value, no YAML file
        config, overrides = None, [config, *overrides]
    return read_config(keys, config, overrides, flags)


def _config_keys(args: argparse.Namespace) -> None:
    from .evaluation.config_keys import markdown_table

    tables = {"eval": EVAL_KEYS, "specificity": SPECIFICITY_KEYS, "report": REPORT_KEYS}
    print(markdown_table(tables[args.command_name]))


def _respond(args: argparse.Namespace) -> None:
    from .options import from_arguments
    from .respond import RespondSettings, respond

    result = respond(from_arguments(RespondSettings, args))
    kept = f"; {len(result.kept_original)} empty answers kept the input's text" if result.kept_original else ""
    print(f"wrote {result.output}: {result.generated} answers generated, {result.resumed} resumed{kept}")


def _relearn(args: argparse.Namespace) -> None:
    from .evaluation.results import RunSpec
    from .options import from_arguments
    from .relearn import relearn_runs

    command = from_arguments(RelearnCommand, args)
    run = RunSpec(command.run_name, str(command.model), command.adapter)
    report = relearn_runs([run], command, str(command.out))
    print(f"report: {report}")


def _method_keys(args: argparse.Namespace) -> None:
    from .unlearn.params import markdown_table
    from .unlearn.registry import all_methods

    print(markdown_table(all_methods()))


def _report(args: argparse.Namespace) -> None:
    from .evaluation.config import REPORT_KEYS
    from .evaluation.report import write_report

    values = _config_values(args, REPORT_KEYS)
    path = write_report(values["runs"], values["output"])
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .demo import DemoSettings, run_demo

    recipes = Path(args.recipes) if args.recipes else None
    relearn = DEFAULT_RELEARN if args.relearn == [] else tuple(args.relearn or ())
    settings = DemoSettings(
        out_dir=Path(args.out), seeds=args.seeds, parallel=args.parallel, recipe_dir=recipes, relearn=relearn
    )
    report = run_demo(settings)
    print(report.read_text(encoding="utf-8"))


MAX_SEED_COUNT = 99  # --seeds N up to this is a count; a larger single number is one seed (--seeds 240)


def _seeds(value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a comma-separated list, got {value!r}") from None
    if len(seeds) > 1 or seeds[0] > MAX_SEED_COUNT:
        return seeds
    if seeds[0] < 1:
        raise argparse.ArgumentTypeError("at least one seed")
    return tuple(DEFAULT_SEEDS[0] + i for i in range(seeds[0]))


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

    p = command("demo", _demo, "the CPU demo: SafeEraser's finding in miniature, over 3 seeds (docs/demo.md)")
    p.add_argument("--out", default="demo_out", help="output folder; finished steps are reused on a re-run")
    p.add_argument(
        "--seeds",
        type=_seeds,
        default=DEFAULT_SEEDS,
        help=f"N <= {MAX_SEED_COUNT}: the first N of 233, 234, ... (1 for a quick look); a larger number: that "
        "one seed; or a comma-separated list (default: 3 seeds)",
    )
    p.add_argument("--parallel", type=int, default=2, help="unlearning runs trained at the same time")
    p.add_argument("--recipes", default=None, help="folder of the tiny_*.yaml recipes (default: the installed yaml/)")
    p.add_argument(
        "--relearn",
        nargs="*",
        metavar="RUN",
        help="afterwards, attack these models by relearning (vanilla and run names such as po_pd; without names: "
        f"{' '.join(DEFAULT_RELEARN)}); about 40 s per model and seed",
    )

    p = command("validate", _validate, "check SafeEraser files and report the first problem")
    p.add_argument("files", nargs="+")

    p = command(
        "eval",
        _eval,
        "evaluate a model (plus LoRA adapter) on the SafeEraser lm-eval tasks: "
        "safeeraser eval CONFIG.yaml [key=value ...], or with flags",
    )
    _config_arguments(p, EVAL_KEYS, "yaml/eval_llava7b.yaml")

    p = command(
        "specificity",
        _specificity,
        "run the paper's seven specificity benchmarks with lmms-eval (optional extra) into the run's folder",
    )
    _config_arguments(p, SPECIFICITY_KEYS, "specificity.yaml")

    p = command("config-keys", _config_keys, "print the YAML keys of a command (a Markdown table)")
    p.add_argument("command_name", choices=["eval", "specificity", "report"])

    p = command("respond", _respond, "regenerate model_response (and sd_response) with your own model")
    add_arguments(p, RespondSettings)

    p = command(
        "relearn", _relearn, "relearning attack: fine-tune an unlearned model on part of the forget set, score again"
    )
    add_arguments(p, RelearnCommand)

    command(
        "method-keys",
        _method_keys,
        "print the YAML keys the registered unlearning methods declare (a Markdown table, as in docs/training.md)",
    )

    p = command(
        "report",
        _report,
        "compare evaluated runs in one report.md (plus a PNG plot): safeeraser report [CONFIG.yaml] [key=value ...]",
    )
    _config_arguments(p, REPORT_KEYS, "report.yaml")
    return parser


def _config_arguments(parser: argparse.ArgumentParser, keys, example: str) -> None:
    from .evaluation.config_keys import add_flags

    parser.add_argument("config", nargs="?", default=None, help=f"a YAML file of the keys below, e.g. {example}")
    parser.add_argument("overrides", nargs="*", default=[], help="key=value pairs that override the YAML file")
    add_flags(parser, keys)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (SafeEraserError, FileExistsError) as err:
        if debug_mode():
            raise
        print(f"safeeraser: error: {err}", file=sys.stderr)
        return USAGE_ERROR_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
