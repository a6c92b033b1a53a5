"""PDU, primal-dual unlearning (Entesari et al. 2025, arXiv 2506.05314).

min_theta LMF(forget) subject to NLL(retain) <= epsilon, solved on the Lagrangian
L = LMF(forget) + lambda * NLL(retain), with lambda <- max(0, lambda + eta (NLL(retain) - epsilon))
after every step. LMF is the logit-margin flattening loss (max logit - mean logit)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll, logit_margin_flattening


@dataclass(frozen=True)
class PDUConfig:
    """PDU hyperparameters; ``epsilon`` has no default (the constraint is the method)."""

    epsilon: float
    """Bound on the retain NLL; required. The paper suggests epsilon = (1 + a) * L_rtn(reference)
    for a tolerance a > 0; open-unlearning's PDU.yaml leaves retain_loss_eps mandatory (???)."""
    dual_step_size: float = 1.0
    """Dual ascent step eta [open-unlearning configs/trainer/PDU.yaml dual_step_size: 1]."""
    initial_dual: float = 1.0
    """Starting lambda [PDU.yaml alpha: 1; the authors' community/methods/PDU/README.md suggests
    starting at 50 or 100 because the flattening loss is large]."""

    def __post_init__(self) -> None:
        if self.epsilon < 0:
            raise UnlearnBenchError(f"pdu epsilon must be >= 0, got {self.epsilon}")
        if self.dual_step_size <= 0 or self.initial_dual < 0:
            raise UnlearnBenchError("pdu needs dual_step_size > 0 and initial_dual >= 0")


@METHODS.register("pdu")
class PDU(Method):
    """Logit-margin flattening on forget under a retain-NLL constraint (dual updated per step)."""

    name = "pdu"
    needs = frozenset({"forget", "retain"})
    config_cls = PDUConfig

    def __init__(self, config: PDUConfig, reference: torch.nn.Module | None = None) -> None:
        super().__init__(config, reference)
        self.dual = config.initial_dual

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """PDU's Lagrangian (forget flattening + lambda * retain NLL), then one dual ascent step."""
        forget, retain = batch["forget"], batch["retain"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        forget_loss = logit_margin_flattening(logits, forget.labels).mean()
        r_logits = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
        retain_nll = batch_nll(r_logits, retain.labels)
        loss = forget_loss + self.dual * retain_nll
        violation = float(retain_nll.detach()) - self.config.epsilon
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "forget_nll": float(batch_nll(logits, forget.labels).detach()),
            "retain_nll": float(retain_nll.detach()),
            "dual": self.dual,
        }
        # Dual ascent uses this step's retain loss; the primal step just taken used the old lambda.
        self.dual = max(0.0, self.dual + self.config.dual_step_size * violation)
        return loss
