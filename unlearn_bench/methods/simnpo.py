"""SimNPO (Fan et al. 2024, "Simplicity Prevails", arXiv 2410.07163; SPEC "SimNPO").

Paper: L = -(2/beta) log sigmoid(-(beta/|y|) log p_theta(y|x) - gamma) + lambda * NLL(retain),
no reference model. SPEC writes the forget term as -(2/beta) log sigmoid(beta (NLL/|y| - delta))
where NLL/|y| is the summed answer NLL over the answer length, i.e. the mean token NLL. The two
agree with gamma = beta * delta; both defaults are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import mean_token_nll, simnpo_loss


@dataclass(frozen=True)
class SimNPOConfig:
    """SimNPO hyperparameters (SPEC's notation)."""

    beta: float = 4.5
    """Inverse temperature [SPEC: 4.5]."""
    delta: float = 0.0
    """Margin on the mean token NLL [SPEC: 0]; the paper's gamma equals beta * delta."""
    retain_weight: float = 1.0
    """The paper's lambda on NLL(retain); 0 drops the retain term. 1.0 here."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UnlearnBenchError(f"simnpo beta must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"simnpo retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("simnpo")
class SimNPO(WithRetainNLL):
    """Reference-free NPO on the length-normalised forget NLL, plus an optional retain NLL."""

    name = "simnpo"
    needs = frozenset({"forget", "retain"})
    config_cls = SimNPOConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """SimNPO's reference-free loss on the length-normalised forget NLL."""
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        nll = mean_token_nll(logits, forget.labels)
        forget_loss = simnpo_loss(nll, self.config.beta, self.config.delta)
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(nll.mean().detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
