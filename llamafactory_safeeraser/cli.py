"""The ``safeeraser`` command: data, tiny models, evaluation, reports and the CPU demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import USAGE_ERROR_EXIT_CODE, SafeEraserError


def _make_tiny_model(args: argparse.Namespace) -> None:
    from .tiny_models import write_tiny_model

    count = write_tiny_model(args.out, family=args.family, size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {args.family}/{args.size} model with {count:,} parameters to {args.out}")


def _make_demo_data(args: argparse.Namespace) -> None:
    from .synthetic import write_synthetic_benchmark

    counts = write_synthetic_benchmark(args.out, args.images_per_concept, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote synthetic SafeEraser data to {args.out}: " + ", ".join(f"{k} {v} records" for k, v in counts.items()))


def _prepare(args: argparse.Namespace) -> None:
    from .prepare import prepare_datasets

    prepared = prepare_datasets(args.train, args.out, args.prefix, args.refusals, args.seed, args.overwrite)
    sizes = ", ".join(f"{prepared.names[split]}={n}" for split, n in prepared.sizes.items())
    print(f"wrote LLaMA-Factory datasets to {prepared.out_dir} (dataset_dir): {sizes}")


def _validate(args: argparse.Namespace) -> None:
    from .benchmark import read_benchmark

    for path in args.files:
        records = read_benchmark(path)
        pairs = sum(len(r.unsafe_pairs) for r in records)
        print(f"{path}: {len(records)} records, {pairs} harmful questions: OK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeeraser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("make-tiny-model", _make_tiny_model, "write a randomly initialised checkpoint built offline")
    p.add_argument("--family", default="llava", choices=["llava"])
    p.add_argument("--size", default="tiny", choices=["tiny", "demo", "small"])
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
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--overwrite", action="store_true")

    p = command("validate", _validate, "check SafeEraser files and report the first problem")
    p.add_argument("files", nargs="+")
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
