"""The YAML keys of ``stage: unlearn``; merged into LLaMA-Factory's FinetuningArguments.

Optional weights default to ``None`` so that a key the chosen method does not use can be
reported as a mistake instead of being silently ignored.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from typing import Literal

# keys that only some methods read; each method lists the ones it reads in `method_keys`
METHOD_SPECIFIC_KEYS = (
    "forget_nll_guard",
    "forget_nll_ceiling",
    "kl_weight",
    "kl_positions",
    "po_reduction",
    "refusal_sampling",
    "npo_beta",
    "refusal_file",
    "simnpo_beta",
    "simnpo_gamma",
    "rmu_layer",
    "rmu_steering_coeff",
    "rmu_alpha",
)


@dataclass
class UnlearningArguments:
    unlearn_method: str = field(
        default="ga",
        metadata={
            "help": "Unlearning method: ga, gd, kl, po, npo, simnpo, idkdpo, rmu, or a name registered by a plugin."
        },
    )
    retain_dataset: str | None = field(
        default=None,
        metadata={"help": "Retain dataset name(s) in dataset_info.json (GD, KL, PO; NPO with retain_weight)."},
    )
    pd_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Prompt-decouple dataset (benign SD image + harmful question); row i pairs with forget row i."
        },
    )
    retain_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of NLL(retain). Default per method: GD 1.0, PO 1.0, NPO 0.0 (off)."},
    )
    pd_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the prompt-decouple loss NLL(pd); needs pd_dataset. Default 1.0."},
    )
    kl_weight: float | None = field(
        default=None, metadata={"help": "KL method: weight of KL(p_ref || p_theta) on retain rows. Default 1.0."}
    )
    npo_beta: float | None = field(default=None, metadata={"help": "NPO: inverse temperature beta. Default 0.1."})
    refusal_file: str | None = field(
        default=None,
        metadata={"help": "PO: file of refusal answers, one per line (default: the built-in list)."},
    )
    simnpo_beta: float | None = field(default=None, metadata={"help": "SimNPO: inverse temperature beta. Default 2.5."})
    simnpo_gamma: float | None = field(default=None, metadata={"help": "SimNPO: reward margin gamma. Default 0.0."})
    rmu_layer: int | None = field(
        default=None,
        metadata={
            "help": "RMU: decoder layer whose output is steered; it and the two layers below it train. "
            "Default: the middle layer."
        },
    )
    rmu_steering_coeff: float | None = field(
        default=None, metadata={"help": "RMU: norm of the random target direction on forget rows. Default 6.5."}
    )
    rmu_alpha: float | None = field(
        default=None,
        metadata={"help": "RMU: weight of keeping retain rows' hidden states at the reference's. Default 1200 (WMDP)."},
    )
    kl_positions: Literal["all", "answer"] | None = field(
        default=None,
        metadata={
            "help": "KL method: positions of a retain row the KL term averages over: 'all' (image, prompt and "
            "answer, as the SafeEraser reference) or 'answer'. Default 'all'."
        },
    )
    po_reduction: Literal["joint", "separate"] | None = field(
        default=None,
        metadata={
            "help": "PO: 'joint' (one token mean over each refusal row and its retain row together, weighting retain "
            "tokens by retain_weight, as the SafeEraser reference) or 'separate' (NLL(refusal) + retain_weight * "
            "NLL(retain)). Default 'joint'."
        },
    )
    refusal_sampling: Literal["per_epoch", "fixed"] | None = field(
        default=None,
        metadata={
            "help": "PO: draw each forget row's refusal anew every epoch ('per_epoch', as the SafeEraser reference) "
            "or once ('fixed'). Default 'per_epoch'. IdkDPO always keeps one (its reference log-probs are cached)."
        },
    )
    retain_sampling: Literal["per_epoch", "fixed"] = field(
        default="per_epoch",
        metadata={
            "help": "Draw each forget row's retain row anew every epoch, uniformly from all retain rows ('per_epoch', "
            "as the SafeEraser reference), or once ('fixed')."
        },
    )
    eos_target: bool = field(
        default=False,
        metadata={
            "help": "Whether the end-of-turn token(s) after each answer are targets. The SafeEraser reference masks "
            "them; as a gradient-ascent target the EOS teaches the model never to stop."
        },
    )
    forget_nll_guard: Literal["clamp", "stop", "off"] | None = field(
        default=None,
        metadata={
            "help": (
                "GA, GD, KL: guard against runaway gradient ascent once the forget NLL passes forget_nll_ceiling: "
                "'clamp' holds those rows at the ceiling, 'stop' ends training, 'off' (default, as the SafeEraser "
                "reference) disables the guard."
            )
        },
    )
    forget_nll_ceiling: float | None = field(
        default=None,
        metadata={"help": "GA, GD, KL: forget NLL bound for the guard. Default: ln(vocab size), a uniform guess."},
    )
    fused_forward: bool = field(
        default=True,
        metadata={"help": "One forward pass over the stacked forget/retain/PD rows (False: one pass per set)."},
    )
    cache_reference_logps: bool = field(
        default=True,
        metadata={"help": "NPO: compute each forget row's reference log-prob once and reuse it every epoch."},
    )

    def check_unlearning_arguments(self, stage: str) -> None:
        """Raise ValueError on inconsistent settings; called when the arguments are parsed."""
        from .registry import get_method

        if stage != "unlearn":
            used = [key for key in ("retain_dataset", "pd_dataset", "pd_weight", "retain_weight") if getattr(self, key)]
            if used:
                raise ValueError(f"{', '.join(used)} only apply to `stage: unlearn` (stage is '{stage}').")
            return

        method = get_method(self.unlearn_method)  # raises with the valid choices
        _check_choices(self)
        name = method.method_name
        for key in METHOD_SPECIFIC_KEYS:
            if getattr(self, key) is not None and key not in method.method_keys:
                raise ValueError(f"`{key}` is not used by unlearn_method '{name}'.")
        if self.pd_weight is not None and self.pd_dataset is None:
            raise ValueError("`pd_weight` is set but there is no `pd_dataset` to apply it to.")
        if self.pd_weight is not None and self.pd_weight < 0:
            raise ValueError("`pd_weight` must be >= 0.")
        if self.retain_weight is not None:
            if method.default_retain_weight is None:
                raise ValueError(f"unlearn_method '{name}' has no retain NLL term; `retain_weight` does not apply.")
            if self.retain_weight < 0:
                raise ValueError("`retain_weight` must be >= 0.")
        if method.uses_retain_rows(self) and self.retain_dataset is None:
            raise ValueError(f"unlearn_method '{name}' needs `retain_dataset`.")
        if not method.uses_retain_rows(self) and self.retain_dataset is not None:
            raise ValueError(f"unlearn_method '{name}' does not use `retain_dataset` with these weights; remove it.")
        for key in ("npo_beta", "simnpo_beta", "rmu_steering_coeff"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ValueError(f"`{key}` must be > 0.")
        for key in ("rmu_layer", "rmu_alpha"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ValueError(f"`{key}` must be >= 0.")
        if self.forget_nll_ceiling is not None and self.forget_nll_ceiling <= 0:
            raise ValueError("`forget_nll_ceiling` must be > 0.")
        if self.forget_nll_ceiling is not None and self.guard_action == "off":
            raise ValueError("`forget_nll_ceiling` is set but `forget_nll_guard` is off; set it to clamp or stop.")

    @property
    def guard_action(self) -> str:
        return self.forget_nll_guard or "off"

    @property
    def effective_pd_weight(self) -> float:
        if self.pd_dataset is None:
            return 0.0
        return 1.0 if self.pd_weight is None else self.pd_weight


def _check_choices(arguments: UnlearningArguments) -> None:
    """Literal-typed keys hold one of their choices (a YAML dict reaches the dataclass without argparse's check)."""
    hints = typing.get_type_hints(UnlearningArguments)
    for item in fields(UnlearningArguments):
        value = getattr(arguments, item.name)
        choices = [arg for part in typing.get_args(hints[item.name]) or [hints[item.name]] for arg in _literal(part)]
        choices += _literal(hints[item.name])
        if choices and value is not None and value not in choices:
            raise ValueError(f"`{item.name}` '{value}' is not one of {', '.join(map(str, choices))}.")


def _literal(annotation: object) -> list:
    return list(typing.get_args(annotation)) if typing.get_origin(annotation) is Literal else []
