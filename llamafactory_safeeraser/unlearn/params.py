"""A method's YAML keys, each declared once (a :class:`~llamafactory_safeeraser.settings.Setting`: name, type,
default, check and help).

A method class lists its keys in ``params``. From those declarations come the fields of the arguments
class LLaMA-Factory parses (so the keys show in ``llamafactory-cli train -h``), the parse-time checks and
the resolution of defaults, and the key table of docs/training.md (``safeeraser method-keys``). A plugin
method declares its keys the same way and gets them from YAML too.

Keys several methods read (``retain_weight``, the guard) are declared by each of them, with their own
defaults; the declarations must agree on everything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..settings import Setting

MethodParam = Setting  # the name plugins written against earlier releases import


def method_problem(param: Setting, value: Any) -> str | None:
    """Why ``value`` is not acceptable for a method key, as LLaMA-Factory's checks word it, or None."""
    problem = param.problem(value)
    if problem is None:
        return None
    if param.choices:
        return f"`{param.name}` '{value}' is not one of {', '.join(map(str, param.choices))}."
    return f"`{param.name}` {problem}."


def positive(name: str, type_: type, default: Any, help_text: str) -> Setting:
    return Setting(name, type_, default, help_text, minimum=0, exclusive_minimum=True)


def non_negative(name: str, type_: type, default: Any, help_text: str) -> Setting:
    return Setting(name, type_, default, help_text, minimum=0)


def one_of(name: str, choices: tuple[str, ...], default: str, help_text: str) -> Setting:
    return Setting(name, str, default, help_text, choices=choices)


SAMPLING_MODES = ("per_epoch", "fixed")  # a draw per row anew every epoch, or once for the run
PD_PAIRINGS = ("same_question", "retain_draw")  # PD row i with forget row i, or the row of the retain draw


# ----- keys several methods declare ----------------------------------------------------------------------
def retain_weight(default: float) -> Setting:
    """The weight of the retain NLL term the base trainer adds (GD, PO, NPO, ...), with this method's default."""
    return non_negative("retain_weight", float, default, "weight of NLL(retain); 0 leaves the retain rows out")


GUARD = (
    one_of(
        "forget_nll_guard",
        ("off", "clamp", "stop"),
        "off",
        "guard against runaway gradient ascent once a forget row's NLL passes forget_nll_ceiling: 'clamp' holds "
        "those rows at the ceiling, 'stop' ends training; 'off' as the SafeEraser reference",
    ),
    positive(
        "forget_nll_ceiling",
        float,
        None,
        "forget NLL bound for the guard (default: ln of the vocabulary size, the NLL of a uniform guess)",
    ),
)
REFUSAL_FILE = Setting("refusal_file", str, None, "file of refusal answers, one per line (default: the built-in list)")


# ----- the union over methods ----------------------------------------------------------------------------
def declared_keys(methods: Iterable[type]) -> dict[str, list[tuple[str, Setting]]]:
    """Every key any of ``methods`` declares: name -> [(method name, declaration)], in declaration order."""
    keys: dict[str, list[tuple[str, Setting]]] = {}
    for method in methods:
        for param in method.params:
            declared = keys.setdefault(param.name, [])
            if declared and not declared[0][1].same_key_as(param):
                first_method, first = declared[0]
                raise TypeError(
                    f"unlearning key `{param.name}`: unlearn_method '{method.method_name}' declares it unlike "
                    f"'{first_method}' ({param} vs {first})"
                )
            declared.append((method.method_name, param))
    return keys


def help_text(declarations: list[tuple[str, Setting]]) -> str:
    """One ``-h`` line for a key: which methods read it, with their defaults, and what it means."""
    first = declarations[0][1]
    defaults = ", ".join(
        f"{method} {'computed' if param.default is None else param.default}" for method, param in declarations
    )
    constraint = f" [{first.constraint}]" if first.constraint else ""
    return f"{first.help}{constraint}. Read by (default): {defaults}."


def markdown_table(methods: Iterable[type]) -> str:
    """The key table of docs/training.md: one row per key, the methods that read it and their defaults."""
    lines = ["| key | methods (default) | values | meaning |", "|---|---|---|---|"]
    for name, declarations in declared_keys(methods).items():
        first = declarations[0][1]
        defaults = ", ".join(
            f"`{method}` ({'computed' if param.default is None else param.default})" for method, param in declarations
        )
        values = ", ".join(f"`{choice}`" for choice in first.choices) or first.constraint or first.type.__name__
        meaning = first.help.replace("|", "\\|")
        lines.append(f"| `{name}` | {defaults} | {values} | {meaning} |")
    return "\n".join(lines)
