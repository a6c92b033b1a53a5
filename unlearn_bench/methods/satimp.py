"""SatImp, saturation and importance weighting (Yang et al. 2025, arXiv 2505.11953).

L = gamma * E_forget[ mean_t p_t^beta1 (1 - p_t)^beta2 log p_t ] + retain_weight * NLL(retain)
with the weight detached. In the paper's terms p^beta1 is the saturation weight (low-likelihood,
already-forgotten tokens get less weight) and (1 - p)^beta2 the importance weight (the opposite);
open-unlearning's trainer names them the same way (weight_sat, weight_imp). The forget term is a
per-sample mean over answer tokens; open-unlearning and the authors' code (tmlr-group/SatImp,
dataloader/dataloader_sat.py) take one mean over all answer tokens of the batch.
See docs/methods.md.
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
    """Exponent of p, the saturation weight [open-unlearning configs/trainer/SatImp.yaml beta1: 5;
    community/methods/SatImp/README.md gives 5 as the paper's value]."""
    beta2: float = 1.0
    """Exponent of 1 - p, the importance weight [SatImp.yaml beta2: 1; same README:
    the paper's 1]."""
    gamma: float = 0.1
    """Weight of the forget term [open-unlearning configs/trainer/SatImp.yaml gamma: 0.1. Its
    community README says the paper's setting is gamma 1 with alpha 0.1 (same 10:1 ratio, ten times
    the loss scale, which AdamW nearly cancels), as do the authors' code (coeff 0.1 on retain)
    and the SatImp trainer's own Python defaults; not changed here, see docs/methods.md]."""
    retain_weight: float = 1.0
    """Weight of NLL(retain) [SatImp.yaml alpha: 1; 0.1 with gamma 1 per that README]."""

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
