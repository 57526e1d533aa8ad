"""`stage: unlearn` in LLaMA-Factory: the arguments class its parser reads, and the training branch it runs.

``install`` runs right after ``llamafactory.train.tuner`` is imported (see ``startup``). The arguments
class is LLaMA-Factory's FinetuningArguments plus the keys every unlearning method shares
(``UnlearningArguments``) plus one field per key a registered method declares (built-ins and plugins
alike), so ``llamafactory-cli train -h`` lists them all. If the installed LLaMA-Factory lacks what is
patched, other stages run untouched; only a command line asking for `stage: unlearn` fails, with the
supported version range.
"""

import contextlib
import dataclasses
import functools
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import USAGE_ERROR_EXIT_CODE, SafeEraserError, debug_mode
from ..integration import llamafactory as lf
from ..integration.template_match import check_template_serves_model
from ..settings import hf_field
from ..unlearn.arguments import UNLEARN_STAGE, UnlearningArguments, check_unlearning_arguments
from ..unlearn.params import declared_keys, help_text
from ..unlearn.registry import all_methods
from ..unlearn.workflow import create_unlearning_trainer, train_unlearning


@functools.cache
def arguments_class() -> type:
    """FinetuningArguments + UnlearningArguments + the registered methods' keys, with the `unlearn` stage."""
    keys = declared_keys(all_methods())
    method_keys = tuple(keys)
    fields: list[tuple[str, Any, Any]] = [
        (name, declarations[0][1].type | None, hf_field(declarations[0][1], help_text(declarations), default=None))
        for name, declarations in keys.items()
    ]
    stage_help = "Which stage will be performed in training (`unlearn`: SafeEraser unlearning)."
    fields.append(
        ("stage", lf.stage_type_with(UNLEARN_STAGE), dataclasses.field(default="sft", metadata={"help": stage_help}))
    )

    def __post_init__(self: Any) -> None:
        lf.FinetuningArguments.__post_init__(self)
        check_unlearning_arguments(self, self.stage, method_keys)

    return dataclasses.make_dataclass(
        "SafeEraserFinetuningArguments",
        fields,
        bases=(lf.FinetuningArguments, UnlearningArguments),
        namespace={
            "__post_init__": __post_init__,
            "__doc__": "LLaMA-Factory's FinetuningArguments plus the unlearning keys.",
        },
    )


def install(tuner: Any) -> None:
    """Add `stage: unlearn` to an imported ``llamafactory.train.tuner`` (idempotent)."""
    try:
        lf.install_stage(tuner, UNLEARN_STAGE, arguments_class(), run_stage)
    except lf.UnsupportedLlamaFactory:
        if lf.requested_stage() == UNLEARN_STAGE:
            raise
        # another stage: leave LLaMA-Factory as it is


@contextlib.contextmanager
def configuration_errors_in_one_line() -> Iterator[None]:
    """A configuration or data error before training starts: one line and exit code 2, not LLaMA-Factory's
    traceback (``SAFEERASER_DEBUG=1`` shows it)."""
    try:
        yield
    except (SafeEraserError, ValueError) as err:
        if debug_mode():
            raise
        print(f"llamafactory-cli train: error: {err}", file=sys.stderr, flush=True)
        sys.exit(USAGE_ERROR_EXIT_CODE)


def run_stage(config: dict) -> None:
    """The `unlearn` branch of LLaMA-Factory's ``_training_function``: its callbacks and its teardown."""
    with configuration_errors_in_one_line():
        model_args, data_args, training_args, finetuning_args, generating_args = lf.get_train_args(config.get("args"))
        run = lf.run_arguments(model_args, data_args, training_args, finetuning_args)
        check_template_serves_model(run.template, run.model)
        callbacks = lf.stage_callbacks(
            model_args, data_args, training_args, finetuning_args, generating_args, config.get("callbacks") or []
        )
        trainer = create_unlearning_trainer(model_args, data_args, training_args, finetuning_args, callbacks)
    train_unlearning(trainer, model_args, data_args, training_args, finetuning_args)
    lf.teardown_process_group()


def parse_train_args(config: dict) -> tuple:
    """LLaMA-Factory's own train-argument parsing and checks, with the `unlearn` stage installed."""
    install(lf.import_tuner())
    return lf.get_train_args(config)
