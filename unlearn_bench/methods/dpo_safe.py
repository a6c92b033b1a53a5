"""DPO alignment baseline on PKU-SafeRLHF safe-versus-unsafe pairs (Rafailov et al. 2023).

L = -E[log sigmoid(beta ((log pi(y_w|x) - log pi0(y_w|x)) - (log pi(y_l|x) - log pi0(y_l|x))))]
with y_w the safe response, y_l the unsafe (forget) response to the same prompt x, sequence
log-probs over answer tokens and pi0 the frozen starting model; beta = 0.1 as TRL's DPOConfig
and the DPO paper. It is a per-step loss in our own loop rather than TRL's DPOTrainer so that it
shares the loop's batching, controls, checkpoints and cost accounting with every other method
(and TRL is not installed here); the loss is the same sigmoid DPO loss TRL computes by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch


@dataclass(frozen=True)
class DPOSafeConfig:
    """DPO hyperparameters."""

    beta: float = 0.1
    """DPO inverse temperature [TRL DPOConfig default, DPO paper: 0.1]."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UnlearnBenchError(f"dpo_safe beta must be > 0, got {self.beta}")


@METHODS.register("dpo_safe")
class DPOSafe(Method):
    """DPO preferring the safe response over the unsafe (forget) one."""

    name = "dpo_safe"
    needs = frozenset({"forget", "safe", "reference"})
    config_cls = DPOSafeConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Sigmoid DPO loss with the safe response chosen and the forget answer rejected."""
        loss, margin, chosen, rejected = self.dpo_terms(
            model, batch["safe"], batch["forget"], self.config.beta
        )
        self.logs = {
            "dpo_loss": float(loss.detach()),
            "margin": float(margin.mean().detach()),
            "safe_logprob": float(chosen.mean().detach()),
            "forget_logprob": float(rejected.mean().detach()),
        }
        return loss
