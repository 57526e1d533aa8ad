"""Base trainer of every unlearning method: one stacked forward pass, the PD hook, guard rails.

A method is a small subclass that declares what it needs (class attributes) and implements
:meth:`UnlearningTrainer.method_loss`. Everything shared lives here:

- the batch holds forget rows (and/or their refusal twins), and retain / PD rows when the run
  uses them; by default they go through the model in ONE forward pass and the logits (and, if
  asked, hidden states) are split per set afterwards;
- the reference model (KL, NPO, IdkDPO, RMU) is the same weights with the LoRA adapter disabled,
  or, for full/freeze fine-tuning, LLaMA-Factory's reference copy; per-row reference log-probs
  are computed once and cached, since the reference never changes;
- ``retain_weight * NLL(retain)`` (methods with a ``default_retain_weight``, or when the YAML sets it)
  and prompt decouple (PD), ``pd_weight * NLL(pd)``, are added to any method's loss, user methods included;
- the forget-NLL guard, the non-finite-loss stop, and per-term loss logging.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from typing import Any, ClassVar

import torch
from transformers import TrainerCallback

from .. import lmf
from . import losses

# Row sets a step can hold, in the order they are stacked: harmful answers, refusals to the same
# prompts (PO, IdkDPO), benign retain answers, and the prompt-decouple rows (benign SD image).
GROUPS = ("forget", "refusal", "retain", "pd")
logger = lmf.get_logger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


class UnlearningBatch:
    """Logits and labels of one step, per set, with lazy access to reference outputs."""

    def __init__(self, trainer: UnlearningTrainer, model: torch.nn.Module, inputs: dict[str, Any]):
        self._trainer, self._model = trainer, model
        self.row_ids: torch.Tensor = inputs.pop("row_ids")
        sizes = inputs.pop("group_sizes").tolist()
        self.sizes = dict(zip(GROUPS, sizes, strict=True))
        self._reference_inputs: dict[str, dict] = inputs.pop("reference_inputs", {})
        self.logits: dict[str, torch.Tensor] = {}
        self.labels: dict[str, torch.Tensor] = {}
        self.attention_mask: dict[str, torch.Tensor] = {}
        # per set, the hidden states of every layer (index 0: embeddings), when the method asks for them
        self.hidden_states: dict[str, tuple[torch.Tensor, ...]] = {}
        self._token_logps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        want_hidden = trainer.needs_hidden_states
        group_inputs = inputs.pop("group_inputs", None)
        if group_inputs is None:  # fused: one forward pass over all rows, split afterwards
            labels = inputs.pop("labels")
            outputs = model(**inputs, output_hidden_states=want_hidden)
            start = 0
            for group in GROUPS:
                n = self.sizes[group]
                if n:
                    rows = slice(start, start + n)
                    self.logits[group], self.labels[group] = outputs.logits[rows], labels[rows]
                    self.attention_mask[group] = inputs["attention_mask"][rows]
                    if want_hidden:
                        self.hidden_states[group] = tuple(h[rows] for h in outputs.hidden_states)
                    start += n
        else:  # one forward pass per set (each padded to its own length)
            for group, batch in group_inputs.items():
                self.labels[group] = batch.pop("labels")
                outputs = model(**batch, output_hidden_states=want_hidden)
                self.logits[group], self.attention_mask[group] = outputs.logits, batch["attention_mask"]
                if want_hidden:
                    self.hidden_states[group] = outputs.hidden_states
                self._reference_inputs.setdefault(group, dict(batch, labels=self.labels[group]))

    def has(self, group: str) -> bool:
        return group in self.logits

    def token_logps(self, group: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``losses.token_logps`` of the set, computed once per step: losses and logged terms share it."""
        if group not in self._token_logps:
            self._token_logps[group] = losses.token_logps(self.logits[group], self.labels[group])
        return self._token_logps[group]

    def nll(self, group: str) -> torch.Tensor:
        """Mean answer-token NLL of the set."""
        return losses.mean_nll(*self.token_logps(group))

    def sequence_logps(self, group: str) -> torch.Tensor:
        """log pi_theta(y|x) per row of the set."""
        return losses.summed_logps(*self.token_logps(group))

    def reference_outputs(self, group: str, output_hidden_states: bool = False) -> tuple[Any, dict[str, Any]]:
        """The reference model's outputs for the rows of ``group`` (no gradient), and the inputs it saw."""
        batch = dict(self._reference_inputs[group])
        labels = batch.pop("labels")
        with torch.no_grad(), self._trainer.reference_model_context(self._model) as reference:
            outputs = reference(**batch, output_hidden_states=output_hidden_states)
        return outputs, {**batch, "labels": labels}

    def reference_logits(self, group: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference-model logits and labels for the rows of ``group`` (no gradient)."""
        outputs, batch = self.reference_outputs(group)
        return outputs.logits, batch["labels"]

    def reference_sequence_logps(self, group: str) -> torch.Tensor:
        """log pi_ref(y|x) per row of ``group``, from the cache when allowed."""
        cache = self._trainer.reference_logp_cache
        keys = [(group, row) for row in self.row_ids.tolist()]
        missing = cache is None or any(key not in cache for key in keys)
        missing = self._trainer.any_process(missing)  # all ranks must run the same forwards (ZeRO-3)
        if missing:
            logits, labels = self.reference_logits(group)
            values = losses.sequence_logps(logits, labels)
            if cache is not None:
                cache.update(zip(keys, values.tolist(), strict=True))
            return values
        return torch.tensor([cache[key] for key in keys], device=self.row_ids.device, dtype=torch.float32)


class UnlearningTrainer(lmf.CustomSeq2SeqTrainer):
    """Subclass and implement :meth:`method_loss`; register with ``@register_method(name)``."""

    method_name: ClassVar[str] = ""
    # which forget-prompt rows the method trains on: harmful answers and/or refusals (PO, IdkDPO)
    uses_forget_rows: ClassVar[bool] = True
    uses_refusal_rows: ClassVar[bool] = False
    # weight of NLL(retain) when the YAML does not set retain_weight; None: the method has no such term
    default_retain_weight: ClassVar[float | None] = None
    # sets whose reference-model outputs the loss needs (KL: retain, NPO: forget)
    reference_groups: ClassVar[tuple[str, ...]] = ()
    # optional YAML keys the method reads (see arguments.METHOD_SPECIFIC_KEYS)
    method_keys: ClassVar[frozenset[str]] = frozenset()
    # whether the forward pass must also return every layer's hidden states (RMU)
    needs_hidden_states: ClassVar[bool] = False

    @classmethod
    def resolved_retain_weight(cls, args: Any) -> float:
        return args.retain_weight if args.retain_weight is not None else (cls.default_retain_weight or 0.0)

    @classmethod
    def uses_retain_rows(cls, args: Any) -> bool:
        return bool(cls.resolved_retain_weight(args)) or "retain" in cls.reference_groups

    @classmethod
    def refusal_sampling(cls, args: Any) -> str:
        """How refusal rows (uses_refusal_rows) pick their refusal: 'fixed' (once) or 'per_epoch'."""
        return "fixed"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unlearning = self.finetuning_args
        self.retain_weight = self.resolved_retain_weight(unlearning)
        self.pd_weight = unlearning.effective_pd_weight
        # from the config, not the output-embedding weight: ZeRO-3 partitions weights to shape [0] at load
        vocab_size = self.model.config.get_text_config().vocab_size
        self.forget_nll_ceiling = (
            math.inf if unlearning.guard_action == "off" else (unlearning.forget_nll_ceiling or math.log(vocab_size))
        )
        # compute_loss returns a mean over its rows: the Trainer must divide by the accumulation steps
        # (it would not for a model whose forward takes loss kwargs)
        self.model_accepts_loss_kwargs = False
        # (set, row id) -> log pi_ref(y|x); the reference never changes, so each row is computed once
        self.reference_logp_cache: dict[tuple[str, int], float] | None = (
            {} if unlearning.cache_reference_logps else None
        )
        self._term_sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.float64))
        self._term_counts: dict[str, int] = defaultdict(int)
        self.logged_terms: set[str] = set()
        self._guard_tripped = False
        self._guard_announced = False
        self.add_callback(_GuardCallback(self))

    @property
    def adds_retain_nll(self) -> bool:
        """Whether the base class adds ``retain_weight * NLL(retain)``; False for a method that folds the
        retain rows into its own term (PO's joint reduction)."""
        return True

    # ----- what a method implements ---------------------------------------------------------
    def method_loss(self, batch: UnlearningBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the method's loss and the named terms to log (detached scalars or tensors)."""
        raise NotImplementedError

    # ----- shared helpers for methods ----------------------------------------------------------
    def forget_ascent(self, batch: UnlearningBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-NLL(forget) under the guard; the building block of GA, GD and KL."""
        loss, held_back = losses.guarded_ascent(*batch.token_logps("forget"), self.guard_ceiling)
        forget_nll = batch.nll("forget").detach()
        if self.finetuning_args.guard_action == "stop" and forget_nll.item() > self.forget_nll_ceiling:
            self._guard_tripped = True
        if not self._guard_announced and held_back.item():
            self._guard_announced = True  # afterwards the logged term `guard_held_back` tracks it
            logger.warning_rank0(
                f"forget-NLL guard: from step {self.state.global_step} on, forget rows whose NLL is above "
                f"{self.forget_nll_ceiling:.2f} are held at that ceiling instead of ascending "
                "(logged as guard_held_back)"
            )
        return loss, {"forget_nll": forget_nll, "guard_held_back": held_back.float()}

    @property
    def guard_ceiling(self) -> float:
        return self.forget_nll_ceiling if self.finetuning_args.guard_action == "clamp" else math.inf

    @contextlib.contextmanager
    def reference_model_context(self, model: torch.nn.Module):
        """Yield the frozen starting model: a reference copy, or the same weights with LoRA disabled."""
        if self.ref_model is not None:
            yield self.ref_model
            return
        unwrapped = self.accelerator.unwrap_model(model)
        with unwrapped.disable_adapter():
            yield model

    def any_process(self, flag: bool) -> bool:
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor(float(flag), device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    # ----- Trainer hooks ----------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = UnlearningBatch(self, model, inputs)
        loss, terms = self.method_loss(batch)
        # The two terms any method can carry, added here so that no method file repeats them.
        if self.adds_retain_nll and self.retain_weight and batch.has("retain"):
            retain_nll = batch.nll("retain")
            loss = loss + self.retain_weight * retain_nll
            terms["retain_nll"] = retain_nll.detach()
        if self.pd_weight and batch.has("pd"):
            pd_nll = batch.nll("pd")
            loss = loss + self.pd_weight * pd_nll
            terms["pd_nll"] = pd_nll.detach()
        if not torch.isfinite(loss).item():
            raise NonFiniteLossError(
                f"unlearning loss is {loss.item()} at step {self.state.global_step} "
                f"(terms: {', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); stopping before the update. "
                f"Checkpoints already in {self.args.output_dir} are untouched; resume from the last one "
                "with a lower learning rate or a tighter forget_nll_ceiling."
            )
        if model.training:
            self.logged_terms.update(terms)
            for name, value in terms.items():
                self._term_sums[name] += value.detach().double().cpu()
                self._term_counts[name] += 1
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._term_counts:
            names = sorted(self._term_counts)
            means = torch.tensor([self._term_sums[n].item() / self._term_counts[n] for n in names])
            if self.accelerator.num_processes > 1:
                means = self.accelerator.reduce(means.to(self.accelerator.device), reduction="mean").cpu()
            logs.update({name: round(value, 6) for name, value in zip(names, means.tolist(), strict=True)})
            self._term_sums.clear()
            self._term_counts.clear()
        super().log(logs, *args, **kwargs)


class _GuardCallback(TrainerCallback):
    """Ends training when the 'stop' guard tripped on any process."""

    def __init__(self, trainer: UnlearningTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        if trainer.finetuning_args.guard_action == "stop" and trainer.any_process(trainer._guard_tripped):
            logger.warning_rank0(
                f"forget-NLL guard: forget NLL passed {trainer.forget_nll_ceiling:.2f}; "
                f"stopping training at step {state.global_step} and saving the model."
            )
            control.should_training_stop = True
        return control
