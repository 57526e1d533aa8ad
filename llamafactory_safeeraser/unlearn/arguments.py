"""The YAML keys of ``stage: unlearn``; merged into LLaMA-Factory's FinetuningArguments.

Optional weights default to ``None`` so that a key the chosen method does not use can be
reported as a mistake instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GUARD_ACTIONS = ("clamp", "stop", "off")
# keys that only some methods read; each method lists the ones it reads in `method_keys`
METHOD_SPECIFIC_KEYS = (
    "kl_weight",
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
    forget_nll_guard: Literal["clamp", "stop", "off"] = field(
        default="clamp",
        metadata={
            "help": (
                "Guard against runaway gradient ascent once the forget NLL passes forget_nll_ceiling: "
                "'clamp' holds those rows at the ceiling, 'stop' ends training, 'off' disables the guard."
            )
        },
    )
    forget_nll_ceiling: float | None = field(
        default=None,
        metadata={"help": "Forget NLL bound for the guard. Default: ln(vocab size), the NLL of a uniform guess."},
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
        if self.forget_nll_guard not in GUARD_ACTIONS:
            raise ValueError(f"forget_nll_guard '{self.forget_nll_guard}' is not one of {', '.join(GUARD_ACTIONS)}.")
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

    @property
    def effective_pd_weight(self) -> float:
        if self.pd_dataset is None:
            return 0.0
        return 1.0 if self.pd_weight is None else self.pd_weight
