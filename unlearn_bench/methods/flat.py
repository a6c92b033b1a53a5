"""FLAT: forget-data-only loss adjustment (Wang et al. ICLR 2025, arXiv 2410.11143; SPEC "FLAT").

With P_f the mean token probability of the forget answer and P_e that of a template answer y_e
(the "idk" part: same question, refusal answer), FLAT maximises the variational f-divergence
between the two, i.e. minimises L = -g*(P_e) + f*(g*(P_f)). No retain data, no reference model.
The (g*, f* o g*) pairs are in :data:`unlearn_bench.methods.losses.F_DIVERGENCES` (f-GAN,
Nowozin et al. 2016, Table 6; FLAT Table 2). Two differ from the SPEC's table and are named
variants: ``squared_hellinger_fgan`` and ``reverse_kl_fgan`` (the plain names are refused with
the reason). ``form`` "batch_mean" is the authors' code: P averaged over every batch x position,
prompt and padding positions counting as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import (
    F_DIVERGENCES,
    FLAT_SPEC_PAIRS_REFUSED,
    flat_loss,
    mean_position_prob,
    mean_token_nll,
    mean_token_prob,
)


@dataclass(frozen=True)
class FLATConfig:
    """FLAT hyperparameters."""

    divergence: str = "total_variation"
    """One of kl, reverse_kl_fgan, jeffrey, squared_hellinger_fgan, pearson, neyman,
    jensen_shannon, total_variation [SPEC default: total_variation]."""
    form: Literal["per_sample", "batch_mean"] = "per_sample"
    """"per_sample": g*, f* applied per sample, then averaged (the paper's importance-weight
    framing; default). "batch_mean": applied once to P averaged over every batch x position,
    prompt and padding counting as zero (the authors' code)."""

    def __post_init__(self) -> None:
        if self.divergence in FLAT_SPEC_PAIRS_REFUSED:
            raise UnlearnBenchError(
                f"FLAT divergence {self.divergence!r}: {FLAT_SPEC_PAIRS_REFUSED[self.divergence]}"
            )
        if self.divergence not in F_DIVERGENCES:
            known = ", ".join(sorted(F_DIVERGENCES))
            raise UnlearnBenchError(f"unknown FLAT divergence {self.divergence!r}; known: {known}")
        if self.form not in ("per_sample", "batch_mean"):
            raise UnlearnBenchError(
                f"FLAT form must be 'per_sample' or 'batch_mean', got {self.form!r}"
            )


@METHODS.register("flat")
class FLAT(Method):
    """Minimise -g*(P_template) + f*(g*(P_forget)) for the configured f-divergence."""

    name = "flat"
    needs = frozenset({"forget", "idk"})
    config_cls = FLATConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """FLAT's f-divergence loss between template and forget answers."""
        forget, template = batch["forget"], batch["idk"]
        forget_logits = model(
            input_ids=forget.input_ids, attention_mask=forget.attention_mask
        ).logits
        template_logits = model(
            input_ids=template.input_ids, attention_mask=template.attention_mask
        ).logits
        prob = mean_position_prob if self.config.form == "batch_mean" else mean_token_prob
        p_forget = prob(forget_logits, forget.labels)
        p_template = prob(template_logits, template.labels)
        loss = flat_loss(p_forget, p_template, self.config.divergence, self.config.form)
        self.logs = {
            "forget_loss": float(loss.detach()),
            "p_forget": float(p_forget.mean().detach()),
            "p_template": float(p_template.mean().detach()),
            "forget_nll": float(mean_token_nll(forget_logits, forget.labels).mean().detach()),
        }
        return loss
