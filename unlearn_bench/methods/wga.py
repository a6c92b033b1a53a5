"""WGA, weighted gradient ascent (Wang et al. 2025, arXiv 2502.19301).

L = E_forget[ mean_t p_t^beta log p_t ] + retain_weight * NLL(retain), p_t = p_theta(y_t | x, y_<t)
with the weight p_t^beta detached: tokens the model already gave up on stop pulling the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import batch_nll, weighted_ascent_loss


@dataclass(frozen=True)
class WGAConfig:
    """WGA hyperparameters."""

    beta: float = 1.0
    """Weight exponent [open-unlearning configs/trainer/WGA.yaml beta: 1; its
    community/methods/WGA/README.md gives 1.0 as the paper's value]."""
    retain_weight: float = 1.0
    """Weight of NLL(retain) [WGA.yaml: retain_loss_type NLL, alpha 1; gamma 1 on
    the forget term]."""

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise UnlearnBenchError(f"wga beta must be >= 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"wga retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("wga")
class WGA(WithRetainNLL):
    """Gradient ascent with detached per-token weights p^beta (arXiv 2502.19301)."""

    name = "wga"
    needs = frozenset({"forget", "retain"})
    config_cls = WGAConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """WGA's loss: answer-token NLL ascent weighted by the detached p(token)^beta."""
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        forget_loss = weighted_ascent_loss(logits, forget.labels, self.config.beta, 0.0).mean()
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
