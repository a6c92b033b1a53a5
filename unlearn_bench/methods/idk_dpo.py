"""IdkPO / DPO unlearning: prefer a refusal over the forget answer (SPEC "IdkPO / DPO").

DPO (Rafailov et al. 2023) on pairs (x, y_w = refusal from the "idk" part, y_l = forget answer),
as in TOFU's preference-optimisation baseline (Maini et al. 2024):
L = -E[log sigmoid(beta ((log pi(y_w|x) - log pi0(y_w|x)) - (log pi(y_l|x) - log pi0(y_l|x))))]
    + retain_weight * NLL(retain)
with sequence log-probs and pi0 the frozen starting model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL


@dataclass(frozen=True)
class IdkDPOConfig:
    """IdkDPO hyperparameters."""

    beta: float = 0.1
    """DPO inverse temperature [SPEC: 0.1]."""
    retain_weight: float = 1.0
    """Weight of NLL(retain); 0 drops it. TOFU's preference baseline adds the retain loss with
    weight 1."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UnlearnBenchError(f"idk_dpo beta must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"idk_dpo retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("idk_dpo")
class IdkDPO(WithRetainNLL):
    """DPO preferring the refusal over the forget answer, plus an optional retain NLL."""

    name = "idk_dpo"
    needs = frozenset({"forget", "idk", "retain", "reference"})
    config_cls = IdkDPOConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """DPO preferring the refusal over the forget answer."""
        forget_loss, margin, chosen, rejected = self.dpo_terms(
            model, batch["idk"], batch["forget"], self.config.beta
        )
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "margin": float(margin.mean().detach()),
            "forget_logprob": float(rejected.mean().detach()),
            "idk_logprob": float(chosen.mean().detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
