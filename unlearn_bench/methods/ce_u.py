"""CE-U, cross-entropy unlearning (arXiv 2503.01224).

L = E_forget[ CE(softmax(z with z_y = -inf), p_theta) ] + retain_weight * NLL(retain)
per answer token, z the model's own logits detached: the target is the current distribution with
the true token removed and renormalised, so the loss pushes mass off y without a frozen reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, UnlearnBatch, WithRetainNLL
from unlearn_bench.methods.losses import batch_nll, ceu_target, soft_target_cross_entropy


@dataclass(frozen=True)
class CEUConfig:
    """CE-U hyperparameters."""

    retain_weight: float = 0.0
    """Weight of NLL(retain); 0 = the paper's forget-only CE-U (abstract: no extra oracle model or
    positive samples) and open-unlearning's CEU.yaml, which uses the forget batch only."""
    ignore_first_token: bool = False
    """Named variant ``ignore_first_token``: skip each answer's first token, as open-unlearning's
    configs/trainer/CEU.yaml does (ignore_first_n_answer_tokens: 1). Its trainer's comment credits
    this to a footnote in the paper's Training Settings; that footnote was not checked against the
    paper text here (docs/methods.md). Default False: the CE-U loss over every answer token."""

    def __post_init__(self) -> None:
        if self.retain_weight < 0:
            raise UnlearnBenchError(f"ce_u retain_weight must be >= 0, got {self.retain_weight}")


def drop_first_answer_token(labels: torch.Tensor) -> torch.Tensor:
    """Labels with each row's first scored token set to -100."""
    scored = labels != -100
    first = scored & (scored.cumsum(dim=-1) == 1)
    return labels.masked_fill(first, -100)


@METHODS.register("ce_u")
class CEU(WithRetainNLL):
    """Cross-entropy towards the model's own distribution without the true token."""

    name = "ce_u"
    needs = frozenset({"forget", "retain"})
    config_cls = CEUConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """CE-U's loss: cross-entropy against the target with the label's logit removed."""
        forget = batch["forget"]
        labels = forget.labels
        if self.config.ignore_first_token:
            labels = drop_first_answer_token(labels)
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        forget_loss = soft_target_cross_entropy(logits, ceu_target(logits, labels), labels).mean()
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
        }
        return self.add_retain_nll(model, batch, forget_loss)
