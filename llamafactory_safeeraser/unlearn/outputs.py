"""A view of one step's policy outputs, per row set; the trainer's forward pass fills it."""

from __future__ import annotations

from typing import Any

import torch

from . import losses


class StepOutputs:
    """Logits, labels and attention masks of one step, per set (``forget``, ``refusal``, ``retain``, ``pd``).

    ``reference_inputs`` are the sets' inputs for a reference pass (the trainer runs it when a method asks);
    ``activations`` holds what a method captured during the forward pass (RMU: one layer's output).
    The answer-token log-probs of a set are computed once and shared by the loss and the logged terms.
    """

    def __init__(
        self,
        row_ids: torch.Tensor,
        logits: dict[str, torch.Tensor],
        labels: dict[str, torch.Tensor],
        attention_mask: dict[str, torch.Tensor],
        reference_inputs: dict[str, dict[str, Any]],
    ):
        self.row_ids = row_ids
        self.logits, self.labels, self.attention_mask = logits, labels, attention_mask
        self.reference_inputs = reference_inputs
        self.activations: dict[str, torch.Tensor] = {}
        self._token_logps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def row_sets(self) -> list[str]:
        return list(self.logits)

    def has(self, row_set: str) -> bool:
        return row_set in self.logits

    def token_logps(self, row_set: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``losses.token_logps`` of the set, computed once per step."""
        if row_set not in self._token_logps:
            self._token_logps[row_set] = losses.token_logps(self.logits[row_set], self.labels[row_set])
        return self._token_logps[row_set]

    def nll(self, row_set: str) -> torch.Tensor:
        """The set's NLL: each row's mean answer-token NLL, averaged over rows."""
        return losses.mean_nll(*self.token_logps(row_set))

    def sequence_logps(self, row_set: str) -> torch.Tensor:
        """log pi_theta(y|x) per row of the set."""
        return losses.summed_logps(*self.token_logps(row_set))
