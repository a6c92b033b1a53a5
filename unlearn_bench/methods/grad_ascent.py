"""Gradient ascent: maximise the forget-set NLL (SPEC "GA")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class GradAscentConfig:
    """GA has no hyperparameters of its own; learning rate and steps belong to the trainer."""


@METHODS.register("grad_ascent")
class GradAscent(Method):
    """Minimise -NLL(forget), NLL being the mean answer-token NLL per sample, averaged."""

    name = "grad_ascent"
    needs = frozenset({"forget"})
    config_cls = GradAscentConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """The negated forget NLL."""
        forget = batch["forget"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        forget_nll = batch_nll(logits, forget.labels)
        self.logs = {"forget_nll": float(forget_nll.detach())}
        return -forget_nll
