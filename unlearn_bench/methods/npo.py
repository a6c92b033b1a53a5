"""Negative Preference Optimization (Zhang et al. 2024, arXiv 2404.05868; SPEC "NPO").

L = -(2/beta) E_forget[log sigmoid(-beta (log p_theta(y|x) - log p_theta0(y|x)))]
    + retain_weight * NLL(retain)          (NPO+RT when retain_weight > 0)
with SEQUENCE log-probs (sum over answer tokens) and theta0 the frozen starting model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import batch_nll, npo_loss, sequence_logprob


@dataclass(frozen=True)
class NPOConfig:
    """NPO hyperparameters."""

    beta: float = 0.1
    """Inverse temperature [paper/SPEC: 0.1]."""
    retain_weight: float = 1.0
    """Weight of NLL(retain); 0 = plain NPO. SPEC: "usually with a retain term"; NPO+RT in the
    paper adds the retain NLL with weight 1."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UnlearnBenchError(f"npo beta must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"npo retain_weight must be >= 0, got {self.retain_weight}")


@METHODS.register("npo")
class NPO(WithRetainNLL):
    """NPO on forget (sequence log-probs, frozen reference), plus an optional retain NLL."""

    name = "npo"
    needs = frozenset({"forget", "retain", "reference"})
    config_cls = NPOConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """NPO's loss on the forget part against the frozen reference."""
        assert self.reference is not None  # Method.__init__ enforces it ("reference" in needs)
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        with torch.no_grad():
            ref_logits = self.reference(
                input_ids=forget.input_ids, attention_mask=forget.attention_mask
            ).logits
        logp = sequence_logprob(logits, forget.labels)
        ref_logp = sequence_logprob(ref_logits, forget.labels)
        forget_loss = npo_loss(logp, ref_logp, self.config.beta)
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
            "forget_logratio": float((logp - ref_logp).mean().detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
