"""Gradient difference: ascend on forget, descend on retain (SPEC "GradDiff").

Liu et al. 2022 ("Continual learning and private unlearning"), the GradDiff baseline of TOFU
(Maini et al. 2024): L = -NLL(forget) + alpha * R(retain), with R either the retain NLL or the
token-level KL(theta0 || theta) on retain answers (TOFU's "KL" variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll, token_kl


@dataclass(frozen=True)
class GradDiffConfig:
    """GradDiff hyperparameters (SPEC "GradDiff")."""

    alpha: float = 1.0
    """Weight of the retain term [paper/SPEC: 1]."""
    retain_term: Literal["nll", "kl"] = "nll"
    """"nll": retain NLL (default); "kl": KL(theta0 || theta) on retain tokens (needs theta0)."""

    def __post_init__(self) -> None:
        if self.retain_term not in ("nll", "kl"):
            raise UnlearnBenchError(
                f"grad_diff retain_term must be 'nll' or 'kl', got {self.retain_term!r}"
            )


@METHODS.register("grad_diff")
class GradDiff(Method):
    """Minimise -NLL(forget) + alpha * (NLL(retain) or KL(theta0 || theta) on retain)."""

    name = "grad_diff"
    # The default config's needs; ``needs_for`` adds the reference for retain_term="kl".
    needs = frozenset({"forget", "retain"})
    config_cls = GradDiffConfig

    @classmethod
    def needs_for(cls, config: GradDiffConfig) -> frozenset[str]:
        """Batch parts (and "reference") this configuration uses."""
        return cls.needs | {"reference"} if config.retain_term == "kl" else cls.needs

    def __init__(self, config: GradDiffConfig, reference: torch.nn.Module | None = None) -> None:
        super().__init__(config, reference)
        if "reference" in self.needs_for(config) and reference is None:
            raise ValueError("method 'grad_diff' with retain_term='kl' needs a frozen reference")

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Negated forget NLL plus the retain term (NLL or KL to the reference)."""
        forget, retain = batch["forget"], batch["retain"]
        logits = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        forget_nll = batch_nll(logits, forget.labels)
        retain_logits = model(
            input_ids=retain.input_ids, attention_mask=retain.attention_mask
        ).logits
        retain_nll = batch_nll(retain_logits, retain.labels)
        logs = {"forget_nll": float(forget_nll.detach()), "retain_nll": float(retain_nll.detach())}
        if self.config.retain_term == "kl":
            assert self.reference is not None  # checked in __init__
            with torch.no_grad():
                ref_logits = self.reference(
                    input_ids=retain.input_ids, attention_mask=retain.attention_mask
                ).logits
            retain_term = token_kl(ref_logits, retain_logits, retain.labels).mean()
            logs["retain_kl"] = float(retain_term.detach())
        else:
            retain_term = retain_nll
        self.logs = logs
        return -forget_nll + self.config.alpha * retain_term
