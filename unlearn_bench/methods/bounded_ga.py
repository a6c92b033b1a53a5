"""Bounded gradient ascent ("Unlearning with Control", Wang et al. 2024; SPEC controls).

Each forget sample contributes (delta - NLL) while its mean token NLL is below delta and nothing
(no gradient) once it reaches delta, so ascent stops per sample instead of diverging, which is
what drives plain GA into excessive unlearning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import bounded_ascent_loss, mean_token_nll


@dataclass(frozen=True)
class BoundedGAConfig:
    """Bounded GA hyperparameters."""

    delta: float = 5.0
    """Bound on the per-sample mean token NLL, in nats. Project default, not a paper value:
    5 nats is a mean token probability of about e^-5 = 0.7%, well below what a model gives
    fluent text it never saw (roughly 2-4 nats), so forgetting completes before the bound
    stops it; lower it to stop earlier."""

    def __post_init__(self) -> None:
        if self.delta <= 0:
            raise UnlearnBenchError(f"bounded_ga delta must be > 0, got {self.delta}")


@METHODS.register("bounded_ga")
class BoundedGA(Method):
    """Minimise mean_i max(0, delta - NLL_i) over forget samples."""

    name = "bounded_ga"
    needs = frozenset({"forget"})
    config_cls = BoundedGAConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Gradient ascent on the forget NLL until it passes the bound."""
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        nll = mean_token_nll(logits, forget.labels)
        loss = bounded_ascent_loss(nll, self.config.delta)
        self.logs = {
            "forget_loss": float(loss.detach()),
            "forget_nll": float(nll.mean().detach()),
            "active_fraction": float((nll < self.config.delta).float().mean()),
        }
        return loss
