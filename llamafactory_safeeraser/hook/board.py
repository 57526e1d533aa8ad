"""`stage: unlearn` in LlamaBoard (``llamafactory-cli webui``): the `Unlearning` stage and its fields.

``install`` runs right after ``llamafactory.webui.interface`` is imported (see ``startup``). The stage's box
holds ``unlearn_method`` (every registered method, plugins included), ``retain_dataset``, ``pd_dataset``,
``pd_weight`` and every key a method declares (``params``), each key shown while the chosen method reads it
and set to that method's default when the user picks the method. A field left empty stays out of the YAML,
so the method's default (or what LlamaBoard's "Extra arguments" say) applies. Before a preview or a start,
the run's arguments go through the check ``llamafactory-cli train`` runs when it parses them.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from ..integration import llamaboard
from ..integration.llamaboard import BoardField, BoardStage
from ..unlearn.arguments import UNLEARN_STAGE, UnlearningArguments, check_unlearning_arguments
from ..unlearn.params import declared_keys, help_text
from ..unlearn.registry import all_methods

STAGE_LABEL = "Unlearning"
DATASET_KEYS = ("retain_dataset", "pd_dataset")
_NUMBER_WORDS = {float: "a number", int: "an integer"}


def install(interface: ModuleType) -> None:
    """Add the `Unlearning` stage to an imported ``llamafactory.webui.interface`` (idempotent)."""
    llamaboard.install(interface, board_stage())


def board_stage(methods: list[type] | None = None) -> BoardStage:
    """The stage as LlamaBoard shows it, from ``methods`` (default: every registered one)."""
    methods = all_methods() if methods is None else methods
    by_name = {method.method_name: method for method in methods}
    keys = declared_keys(methods)
    shared = {f.name: f for f in dataclasses.fields(UnlearningArguments)}
    default_method = shared["unlearn_method"].default
    selector = BoardField(
        "unlearn_method",
        info=shared["unlearn_method"].metadata["help"],
        choices=tuple(by_name),
        default=default_method if default_method in by_name else next(iter(by_name)),
    )
    fields = (
        *(BoardField(name, info=shared[name].metadata["help"], dataset=True) for name in DATASET_KEYS),
        BoardField("pd_weight", info=shared["pd_weight"].metadata["help"]),
        *(
            BoardField(name, info=help_text(declared), choices=declared[0][1].choices, per_choice=True)
            for name, declared in keys.items()
        ),
    )

    def fields_for(method_name: str) -> dict[str, str]:
        method = by_name.get(method_name)
        return {param.name: _as_text(param.default) for param in method.params} if method else {}

    def to_args(values: dict[str, Any]) -> dict[str, Any]:
        method_name = values[selector.name]
        if method_name not in by_name:
            raise ValueError(f"unknown unlearn_method '{method_name}'; valid choices: {', '.join(by_name)}")
        args: dict[str, Any] = {selector.name: method_name}
        for name in DATASET_KEYS:
            if names := _dataset_names(values.get(name)):
                args[name] = names
        typed = [("pd_weight", float), *((param.name, param.type) for param in by_name[method_name].params)]
        for name, type_ in typed:
            if text := _as_text(values.get(name)).strip():
                args[name] = _parse(name, type_, text)
        return args

    def check(args: dict[str, Any]) -> None:
        arguments = UnlearningArguments(**{name: args[name] for name in shared if name in args})
        for key in keys:  # the method keys, as the arguments class LLaMA-Factory parses has them
            setattr(arguments, key, args.get(key))
        check_unlearning_arguments(arguments, args.get("stage", UNLEARN_STAGE), tuple(keys))

    return BoardStage(STAGE_LABEL, UNLEARN_STAGE, selector, fields, fields_for, to_args, check)


def _as_text(value: Any) -> str:
    """A value as a text box holds it; None (the method computes it) is an empty box."""
    return "" if value is None else str(value)


def _dataset_names(value: Any) -> str:
    """A dataset picker's value (a list of names, or one typed name) as the YAML's comma-separated names."""
    names = [value] if isinstance(value, str) else list(value or [])
    return ",".join(name.strip() for name in names if name.strip())


def _parse(name: str, type_: type, text: str) -> Any:
    try:
        return type_(text)
    except ValueError:
        raise ValueError(f"`{name}` '{text}' is not {_NUMBER_WORDS.get(type_, type_.__name__)}.") from None
