"""GA+Mismatch (Yao et al. 2023, "Large Language Model Unlearning", arXiv 2310.10683).

L = eps1 * (-NLL(forget)) + eps2 * NLL(forget prompt, random normal answers)
    + eps3 * KL(theta0 || theta) on normal (retain) data.
As in the authors' code (kevinyaobytedance/llm_unlearn, ``utils.py``): every step pairs each
forget prompt with ``k`` normal answers drawn afresh (the "mismatch" part, derived per step in
``train/parts.py``); GA and mismatch NLLs average each row's answer tokens, then rows. The KL
term is ``normal_kl``: "authors_code" (default) is their cross-entropy of theta's softmax
against theta0's, averaged over every position of the normal batch (prompt and padding
included); "answer_only" is the true KL averaged over answer tokens per row, then rows. The
paper's recipe [SPEC]: eps = 0.5, 1, 1; lr 2e-6; batch 2; about 1,000 steps, continuing 3-5x
past the step where the forget loss becomes abnormally high. Learning rate, batch size and steps
belong to the trainer's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import all_position_cross_entropy, batch_nll, token_kl

NORMAL_KL_FORMS = ("authors_code", "answer_only")


@dataclass(frozen=True)
class GAMismatchConfig:
    """GA+Mismatch loss weights, mismatch draws and KL form."""

    eps1: float = 0.5
    """Weight of the gradient-ascent term -NLL(forget) [paper/SPEC: 0.5]."""
    eps2: float = 1.0
    """Weight of NLL on forget prompts paired with random normal answers [paper/SPEC: 1]."""
    eps3: float = 1.0
    """Weight of KL(theta0 || theta) on normal data [paper/SPEC: 1]."""
    k: int = 5
    """Random normal answers drawn afresh per forget prompt at every step [authors' code: 5]."""
    normal_kl: Literal["authors_code", "answer_only"] = "authors_code"
    """KL form on normal data: "authors_code" (all positions, cross-entropy; default) or the
    named variant "answer_only" (KL over answer tokens)."""

    def __post_init__(self) -> None:
        if min(self.eps1, self.eps2, self.eps3) < 0:
            raise UnlearnBenchError("ga_mismatch weights eps1, eps2, eps3 must be >= 0")
        if self.k < 1:
            raise UnlearnBenchError(f"ga_mismatch k must be >= 1, got {self.k}")
        if self.normal_kl not in NORMAL_KL_FORMS:
            raise UnlearnBenchError(
                f"ga_mismatch normal_kl must be one of {', '.join(NORMAL_KL_FORMS)}, "
                f"not {self.normal_kl!r}"
            )


@METHODS.register("ga_mismatch")
class GAMismatch(Method):
    """Ascend on forget answers, learn mismatched normal answers, stay close to theta0 on normal."""

    name = "ga_mismatch"
    needs = frozenset({"forget", "mismatch", "retain", "reference"})
    config_cls = GAMismatchConfig

    def _normal_kl(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        assert self.reference is not None  # Method.__init__ enforces it ("reference" in needs)
        normal = batch["retain"]
        logits = model(input_ids=normal.input_ids, attention_mask=normal.attention_mask).logits
        with torch.no_grad():
            ref_logits = self.reference(
                input_ids=normal.input_ids, attention_mask=normal.attention_mask
            ).logits
        if self.config.normal_kl == "answer_only":
            return token_kl(ref_logits, logits, normal.labels).mean()
        return all_position_cross_entropy(ref_logits, logits)

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Gradient ascent on forget plus NLL of mismatched answers."""
        forget, mismatch = batch["forget"], batch["mismatch"]
        forget_logits = model(
            input_ids=forget.input_ids, attention_mask=forget.attention_mask
        ).logits
        mismatch_logits = model(
            input_ids=mismatch.input_ids, attention_mask=mismatch.attention_mask
        ).logits
        forget_nll = batch_nll(forget_logits, forget.labels)
        mismatch_nll = batch_nll(mismatch_logits, mismatch.labels)
        normal_kl = self._normal_kl(model, batch)
        self.logs = {
            "forget_nll": float(forget_nll.detach()),
            "mismatch_nll": float(mismatch_nll.detach()),
            "retain_kl": float(normal_kl.detach()),
        }
        cfg = self.config
        return -cfg.eps1 * forget_nll + cfg.eps2 * mismatch_nll + cfg.eps3 * normal_kl
