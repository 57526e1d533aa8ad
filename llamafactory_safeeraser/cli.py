"""The ``safeeraser`` command: data, tiny models, evaluation, reports and the CPU demo.

Every command reads its keys one way, LLaMA-Factory's: ``safeeraser CMD [CONFIG.yaml] [key=value ...]``, with
one flag per key as an alias (``--out``, ``--batch-size``, ...); ``safeeraser config-keys CMD`` prints a command's
keys (see :mod:`llamafactory_safeeraser.settings`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .data.settings import PrepareSettings, ValidateSettings
from .demo.settings import DemoSettings
from .errors import USAGE_ERROR_EXIT_CODE, SafeEraserError, debug_mode
from .evaluation.config import EvalCommand, ReportCommand, SpecificityCommand
from .offline.settings import DemoDataSettings, TinyModelSettings
from .relearn.settings import RelearnCommand
from .respond.settings import RespondSettings
from .settings import add_arguments, check_settings, from_arguments, markdown_table, setting


def _make_tiny_model(args: argparse.Namespace) -> None:
    from .offline.tiny_models import write_tiny_model

    settings = from_arguments(TinyModelSettings, args)
    count = write_tiny_model(
        settings.out,
        family=settings.family,
        size=settings.size,
        seed=settings.seed,
        overwrite=settings.overwrite,
        text_layers=settings.text_layers,
        vision_layers=settings.vision_layers,
        dtype=settings.dtype,
    )
    print(f"wrote {settings.family}/{settings.size} model with {count:,} parameters to {settings.out}")


def _make_demo_data(args: argparse.Namespace) -> None:
    from .offline.synthetic import write_synthetic_benchmark

    settings = from_arguments(DemoDataSettings, args)
    counts = write_synthetic_benchmark(
        settings.out, settings.images_per_concept, seed=settings.seed, overwrite=settings.overwrite
    )
    written = ", ".join(f"{k} {v} records" for k, v in counts.items())
    print(f"wrote synthetic SafeEraser data to {settings.out}: {written}")


def _prepare(args: argparse.Namespace) -> None:
    from .data.prepare import prepare_datasets

    settings = from_arguments(PrepareSettings, args)
    prepared = prepare_datasets(
        settings.train,
        settings.out,
        settings.prefix,
        settings.refusals,
        settings.seed,
        settings.overwrite,
        pd_question=settings.pd_question,
        capitalize=settings.capitalize,
    )
    sizes = ", ".join(f"{prepared.names[split]}={n}" for split, n in prepared.sizes.items())
    print(f"wrote LLaMA-Factory datasets to {prepared.out_dir} (dataset_dir): {sizes}")


def _validate(args: argparse.Namespace) -> None:
    from .data.records import check_benchmark

    problems = 0
    files = from_arguments(ValidateSettings, args).files
    for path in files:
        records, errors = check_benchmark(path)
        for error in errors:
            print(f"safeeraser: error: {error}", file=sys.stderr)
        problems += len(errors)
        if not errors:
            pairs = sum(len(r.unsafe_pairs) for r in records)
            print(f"{path}: {len(records)} records, {pairs} harmful questions: OK")
    if problems:
        raise SafeEraserError(f"{problems} problem(s) in {len(files)} file(s)")


def _eval(args: argparse.Namespace) -> None:
    from .evaluation.runner import evaluate_runs

    command = from_arguments(EvalCommand, args)

    def report_progress(result) -> None:  # a RunResult
        summary = result.summary["summary"]
        shown = ", ".join(f"{key} {'n/a' if v is None else f'{100 * v:.1f}%'}" for key, v in summary.items())
        print(f"{result.run.name}: {shown} -> {result.folder}")

    evaluate_runs(
        [command.run],
        command.settings,
        command.output_dir,
        progress=report_progress,
        overwrite=command.overwrite,
        num_processes=command.num_processes,
    )
    print(f"report: {command.output_dir / 'report.md'}")


def _specificity(args: argparse.Namespace) -> None:
    from .evaluation.specificity import evaluate_specificity

    command = from_arguments(SpecificityCommand, args)
    path = evaluate_specificity(command.run, command.settings, command.output_dir)
    print(f"wrote {path}")


def _config_keys(args: argparse.Namespace) -> None:
    command = from_arguments(ConfigKeysSettings, args).command
    print(markdown_table(SETTINGS[command]))


def _respond(args: argparse.Namespace) -> None:
    from .respond import respond

    result = respond(from_arguments(RespondSettings, args))
    kept = f"; {len(result.kept_original)} empty answers kept the input's text" if result.kept_original else ""
    print(f"wrote {result.output}: {result.generated} answers generated, {result.resumed} resumed{kept}")


def _relearn(args: argparse.Namespace) -> None:
    from .evaluation.results import RunSpec
    from .relearn import relearn_runs

    command = from_arguments(RelearnCommand, args)
    run = RunSpec(command.run_name, str(command.model), command.adapter)
    report = relearn_runs([run], command, str(command.out))
    print(f"report: {report}")


def _method_keys(args: argparse.Namespace) -> None:
    from .unlearn.params import markdown_table as method_table
    from .unlearn.registry import all_methods

    print(method_table(all_methods()))


def _report(args: argparse.Namespace) -> None:
    from .evaluation.report import write_report
    from .relearn.report import load_relearn_outputs

    command = from_arguments(ReportCommand, args)
    path = write_report(command.runs, command.output, load_relearn_outputs(command.relearn))
    print(f"wrote {path}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    report = run_demo(from_arguments(DemoSettings, args))
    print(report.read_text(encoding="utf-8"))


# The commands that read keys: name -> (handler, keys, help, an example config)
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], type, str, str]] = {
    "make-tiny-model": (
        _make_tiny_model,
        TinyModelSettings,
        "write a randomly initialised checkpoint built offline",
        "tiny_model.yaml",
    ),
    "make-demo-data": (
        _make_demo_data,
        DemoDataSettings,
        "write a synthetic benchmark in the SafeEraser format",
        "demo_data.yaml",
    ),
    "prepare": (_prepare, PrepareSettings, "convert SafeEraser JSON into LLaMA-Factory datasets", "prepare.yaml"),
    "demo": (
        _demo,
        DemoSettings,
        "the CPU demo: SafeEraser's finding in miniature, over 3 seeds (docs/demo.md)",
        "demo.yaml",
    ),
    "validate": (_validate, ValidateSettings, "check SafeEraser files and report the first problem", "validate.yaml"),
    "eval": (
        _eval,
        EvalCommand,
        "evaluate a model (plus LoRA adapter) on the SafeEraser lm-eval tasks: "
        "safeeraser eval CONFIG.yaml [key=value ...], or with flags",
        "yaml/eval_llava7b.yaml",
    ),
    "specificity": (
        _specificity,
        SpecificityCommand,
        "run the paper's seven specificity benchmarks with lmms-eval (optional extra) into the run's folder",
        "specificity.yaml",
    ),
    "respond": (
        _respond,
        RespondSettings,
        "regenerate model_response (and sd_response) with your own model",
        "respond.yaml",
    ),
    "relearn": (
        _relearn,
        RelearnCommand,
        "relearning attack: fine-tune an unlearned model on part of the forget set, score again",
        "relearn.yaml",
    ),
    "report": (
        _report,
        ReportCommand,
        "compare evaluated runs in one report.md (plus a PNG plot): safeeraser report [CONFIG.yaml] [key=value ...]",
        "report.yaml",
    ),
}
SETTINGS = {name: keys for name, (_, keys, _, _) in COMMANDS.items()}


@dataclass(frozen=True)
class ConfigKeysSettings:
    command: str | None = setting(
        help="the command whose keys to print", choices=tuple(SETTINGS), required=True, positional=True
    )

    def __post_init__(self) -> None:
        check_settings(self)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeeraser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    for name, (handler, keys, help_text, example) in COMMANDS.items():
        add_arguments(command(name, handler, help_text), keys, example)
    add_arguments(
        command("config-keys", _config_keys, "print the YAML keys of a command (a Markdown table)"),
        ConfigKeysSettings,
        "config_keys.yaml",
    )
    command(
        "method-keys",
        _method_keys,
        "print the YAML keys the registered unlearning methods declare (a Markdown table, as in docs/training.md)",
    )
    return parser


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
