"""Finetuning on normal data only, the "Finetuning" baseline row of Yao et al. 2023, Tables 1-3.

Minimise NLL on the task's retain split (the scenario's normal data, TruthfulQA): the model
never sees the forget data, so the row shows what plain finetuning on benign data does to the
harmful / leak / hallucination rates, against which GA and GA+Mismatch are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class FinetuneNormalConfig:
    """No hyperparameters of its own; learning rate and steps belong to the trainer."""


@METHODS.register("finetune_normal")
class FinetuneNormal(Method):
    """Minimise NLL(retain): mean answer-token NLL per normal sample, averaged over the batch."""

    name = "finetune_normal"
    needs = frozenset({"forget", "retain"})
    config_cls = FinetuneNormalConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """NLL of the normal (retain) data."""
        normal = batch["retain"]
        logits = model(input_ids=normal.input_ids, attention_mask=normal.attention_mask).logits
        normal_nll = batch_nll(logits, normal.labels)
        self.logs = {"retain_nll": float(normal_nll.detach())}
        return normal_nll
