"""SatImp, saturation and importance weighting (Yang et al. 2025, arXiv 2505.11953).

L = gamma * E_forget[ mean_t p_t^beta1 (1 - p_t)^beta2 log p_t ] + retain_weight * NLL(retain)
with the weight detached: (1 - p)^beta2 damps saturated tokens, p^beta1 favours important ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import batch_nll, weighted_ascent_loss


@dataclass(frozen=True)
class SatImpConfig:
    """SatImp hyperparameters."""

    beta1: float = 5.0
    """Exponent of p (importance) [open-unlearning configs/trainer/SatImp.yaml: 5]."""
    beta2: float = 1.0
    """Exponent of 1 - p (saturation) [open-unlearning: 1]."""
    gamma: float = 0.1
    """Weight of the forget term [open-unlearning: 0.1]."""
    retain_weight: float = 1.0
    """Weight of NLL(retain) [open-unlearning alpha: 1]."""

    def __post_init__(self) -> None:
        if min(self.beta1, self.beta2) < 0 or self.gamma <= 0:
            raise UnlearnBenchError("satimp needs beta1, beta2 >= 0 and gamma > 0")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"satimp retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("satimp")
class SatImp(WithRetainNLL):
    """Gradient ascent with detached weights p^beta1 (1-p)^beta2 (arXiv 2505.11953)."""

    name = "satimp"
    needs = frozenset({"forget", "retain"})
    config_cls = SatImpConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """SatImp's loss: answer-token NLL ascent weighted by p^beta1 (1-p)^beta2, detached."""
        forget = batch["forget"]
        cfg = self.config
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        ascent = weighted_ascent_loss(logits, forget.labels, cfg.beta1, cfg.beta2).mean()
        forget_loss = cfg.gamma * ascent
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
