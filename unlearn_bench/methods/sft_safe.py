"""SFT alignment baseline: finetune on safe responses to the harmful prompts (Yao et al. 2023).

The "SFT" row of Yao, Xu, Liu 2023 (Figure 1, Tables 1-3): supervised finetuning on the positive
examples unlearning does without, here PKU-SafeRLHF's safe response to each forget prompt.
Loss: mean answer-token NLL per safe sample, averaged over the batch. The forget answers are
never trained on; the "forget" part only supplies the prompts whose safe responses are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch
from unlearn_bench.methods.losses import batch_nll

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SFTSafeConfig:
    """No hyperparameters of its own; learning rate and steps belong to the trainer."""


@METHODS.register("sft_safe")
class SFTSafe(Method):
    """Minimise NLL of the safe responses to the forget prompts."""

    name = "sft_safe"
    needs = frozenset({"forget", "safe"})
    config_cls = SFTSafeConfig

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """NLL of the safe responses."""
        safe = batch["safe"]
        logits = model(input_ids=safe.input_ids, attention_mask=safe.attention_mask).logits
        safe_nll = batch_nll(logits, safe.labels)
        self.logs = {"safe_nll": float(safe_nll.detach())}
        return safe_nll
