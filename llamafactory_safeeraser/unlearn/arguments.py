"""The YAML keys of ``stage: unlearn`` that every method shares, and the parse-time check of all of them.

A method's own keys (``npo_beta``, ``kl_positions``, ``retain_weight``, the guard, ...) are declared by the
method (``params``, see :mod:`.params`); the arguments class LLaMA-Factory parses holds both kinds. Those
keys default to ``None`` in the class, so that a key the chosen method does not read is reported as a
mistake; the check then fills in the chosen method's defaults.
"""

from __future__ import annotations

from typing import Any

from ..settings import Setting, hf_dataclass
from .params import PD_PAIRINGS, SAMPLING_MODES, method_problem
from .registry import BUILTIN_METHODS

UNLEARN_STAGE = "unlearn"

# The stage's general keys, declared once; the arguments class below (what HfArgumentParser reads, so
# `llamafactory-cli train -h` and LlamaBoard show the help) is generated from them.
GENERAL_SETTINGS = (
    Setting(
        "unlearn_method",
        str | None,
        None,
        f"Unlearning method: {', '.join(BUILTIN_METHODS)}, or a name registered by a plugin "
        "(required by `stage: unlearn`).",
        required=True,
    ),
    Setting(
        "retain_dataset",
        str | None,
        None,
        "Retain dataset name(s) in dataset_info.json (methods with a retain term or reference).",
    ),
    Setting(
        "pd_dataset",
        str | None,
        None,
        "Prompt-decouple dataset (benign SD image + harmful question); row i pairs with forget row i (see pd_pairing).",
    ),
    Setting(
        "pd_pairing",
        str,
        "same_question",
        "Which PD row a step trains: the one of its forget row's question ('same_question'), or the row at the "
        "index of its retain draw ('retain_draw', as the SafeEraser reference's data loader; needs retain_dataset).",
        choices=PD_PAIRINGS,
    ),
    Setting(
        "pd_weight",
        float | None,
        None,
        "Weight of the prompt-decouple loss NLL(pd); needs pd_dataset. Default 1.0.",
        minimum=0,
    ),
    Setting(
        "retain_sampling",
        str,
        "per_epoch",
        "Draw each forget row's retain row anew every epoch, uniformly from all retain rows ('per_epoch', "
        "as the SafeEraser reference), or once ('fixed').",
        choices=SAMPLING_MODES,
    ),
    Setting(
        "eos_target",
        bool,
        False,
        "Whether the end-of-turn token(s) after each answer are targets. The SafeEraser reference masks "
        "them; as a gradient-ascent target the EOS teaches the model never to stop.",
    ),
    Setting(
        "fused_forward",
        bool,
        True,
        "One forward pass over the stacked forget/retain/PD rows (False: one pass per set).",
    ),
    Setting(
        "cache_reference_logps",
        bool,
        True,
        "NPO, IdkDPO: compute each row's reference log-prob once and reuse it every epoch.",
    ),
)


class _Derived:
    """What the arguments class derives from its keys."""

    @property
    def effective_pd_weight(self) -> float:
        if self.pd_dataset is None:
            return 0.0
        return 1.0 if self.pd_weight is None else self.pd_weight

    @property
    def draws_pd_with_retain(self) -> bool:
        """Whether the PD rows are picked by the retain draw (then the retain set is loaded for it)."""
        return self.pd_pairing == "retain_draw" and self.effective_pd_weight > 0

    @property
    def guard_action(self) -> str:
        return getattr(self, "forget_nll_guard", None) or "off"


UnlearningArguments = hf_dataclass("UnlearningArguments", GENERAL_SETTINGS, __name__, bases=(_Derived,))


GENERAL_KEYS = ("retain_dataset", "pd_dataset", "pd_weight")  # what another stage must not set


def check_unlearning_arguments(arguments: Any, stage: str, method_keys: tuple[str, ...]) -> None:
    """Raise ValueError on inconsistent settings and fill in the chosen method's defaults.

    ``arguments`` holds UnlearningArguments' fields and one field per method key in ``method_keys``
    (None when the YAML does not set it). Called when LLaMA-Factory parses the arguments.
    """
    from .registry import get_method

    if stage != UNLEARN_STAGE:
        used = [key for key in (*GENERAL_KEYS, *method_keys) if getattr(arguments, key, None) is not None]
        if used:
            raise ValueError(f"{', '.join(used)} only apply to `stage: unlearn` (stage is '{stage}').")
        return

    if arguments.unlearn_method is None:
        from .registry import method_names

        raise ValueError(f"`stage: unlearn` needs `unlearn_method`; valid choices: {', '.join(method_names())}.")
    method = get_method(arguments.unlearn_method)  # raises with the valid choices
    name = method.method_name
    own = {param.name: param for param in method.params}
    for key in method_keys:
        if key not in own and getattr(arguments, key, None) is not None:
            raise ValueError(f"`{key}` is not used by unlearn_method '{name}'.")
    for param in own.values():
        value = getattr(arguments, param.name, None)
        if value is None:
            setattr(arguments, param.name, param.default)
        elif (problem := method_problem(param, value)) is not None:
            raise ValueError(problem)
    for general in GENERAL_SETTINGS:  # the general keys' own checks (choices, minimum)
        value = getattr(arguments, general.name)
        if value is not None and (problem := method_problem(general, value)) is not None:
            raise ValueError(problem)

    if arguments.pd_weight is not None and arguments.pd_dataset is None:
        raise ValueError("`pd_weight` is set but there is no `pd_dataset` to apply it to.")
    if method.uses_retain_rows(arguments) and arguments.retain_dataset is None:
        raise ValueError(f"unlearn_method '{name}' needs `retain_dataset`.")
    if arguments.draws_pd_with_retain and arguments.retain_dataset is None:
        raise ValueError("`pd_pairing: retain_draw` picks PD rows by a retain draw; it needs `retain_dataset`.")
    if (
        not method.uses_retain_rows(arguments)
        and not arguments.draws_pd_with_retain
        and arguments.retain_dataset is not None
    ):
        raise ValueError(f"unlearn_method '{name}' does not use `retain_dataset` with these weights; remove it.")
    if getattr(arguments, "forget_nll_ceiling", None) is not None and arguments.guard_action == "off":
        raise ValueError("`forget_nll_ceiling` is set but `forget_nll_guard` is off; set it to clamp or stop.")
