"""UNDIAL, self-distillation with adjusted logits (Dong et al. 2024, arXiv 2402.10052).

L = E_forget[ CE(softmax(z0 - beta * onehot(y_t)), p_theta) ] + retain_weight * NLL(retain)
per answer token, z0 the frozen starting model's logits: the student is distilled towards the
teacher's distribution with the true token's logit lowered by beta, so only that token loses mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import batch_nll, soft_target_cross_entropy, undial_target


@dataclass(frozen=True)
class UNDIALConfig:
    """UNDIAL hyperparameters."""

    beta: float = 10.0
    """Logit adjustment strength [open-unlearning configs/trainer/UNDIAL.yaml beta: 10; its
    community/methods/UNDIAL/README.md: the paper takes beta from {3, 10, 30}]."""
    retain_weight: float = 0.0
    """Weight of NLL(retain) [UNDIAL.yaml alpha: 0; the same README: the paper uses no
    retain set]."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UnlearnBenchError(f"undial beta must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"undial retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("undial")
class UNDIAL(WithRetainNLL):
    """Distil towards the frozen model's adjusted logits on forget (arXiv 2402.10052)."""

    name = "undial"
    needs = frozenset({"forget", "retain", "reference"})
    config_cls = UNDIALConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """UNDIAL's loss: distil the reference's logits with the label's logit lowered by beta."""
        assert self.reference is not None  # Method.__init__ enforces it ("reference" in needs)
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        with torch.no_grad():
            ref_logits = self.reference(
                input_ids=forget.input_ids, attention_mask=forget.attention_mask
            ).logits
        target = undial_target(ref_logits, forget.labels, self.config.beta)
        forget_loss = soft_target_cross_entropy(logits, target, forget.labels).mean()
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
