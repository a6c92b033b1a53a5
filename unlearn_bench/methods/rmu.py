"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, WMDP, arXiv 2403.03218).

L = mean_t ||h_theta(forget)_t - c u||^2 + alpha * mean_t ||h_theta(retain)_t - h_0(retain)_t||^2
with h the residual stream after decoder block ``layer`` (h_0: the frozen theta0's), u a fixed
random unit vector and the means over valid token positions. As in the paper the norms are
squared L2 norms; the WMDP code uses mean-squared error (an extra 1/hidden_size on both terms),
which Adam largely absorbs. Which parameters train is ``param_set``: "wmdp" (default) is the
original code's (centerforaisafety/wmdp ``rmu/unlearn.py``: ``layer_ids`` 5, 6, 7 with
``layer_id`` 7, param_ids 6 = ``model.layers.{5,6,7}.mlp.down_proj.weight``), shifted with
``layer`` to blocks layer-2..layer; "open_unlearning" is the named variant that trains every
parameter (open-unlearning's ``configs/trainer/RMU.yaml``). A ``trainable`` pattern in the
training config overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, TokenBatch, UnlearnBatch
from unlearn_bench.methods.losses import masked_sq_distance


@dataclass(frozen=True)
class RMUConfig:
    """RMU hyperparameters."""

    layer: int = 7
    """0-based decoder block whose output is steered, as WMDP's ``layer_id`` [paper/SPEC: 7].
    It is ``hidden_states[layer + 1]`` of a Hugging Face model (index 0 = embeddings)."""
    steering_coeff: float = 2.0
    """c, the norm of the steering target c*u [SPEC: 2; WMDP used 6.5 on Zephyr-7B]."""
    alpha: float = 1200.0
    """Weight of the retain term [WMDP, Zephyr-7B: 1200]."""
    seed: int = 0
    """Seed of u: entries drawn uniformly from [0, 1), then normalised (as in WMDP)."""
    positions: Literal["all", "answer"] = "all"
    """Positions averaged: "all" valid tokens (attention mask; WMDP's plain-text corpora) or
    only "answer" tokens (labels != -100)."""
    param_set: Literal["wmdp", "open_unlearning"] = "wmdp"
    """Parameters trained: "wmdp", the original code's MLP down-projections of blocks
    layer-2..layer (default), or "open_unlearning", every parameter."""

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise UnlearnBenchError(f"rmu layer must be >= 0, got {self.layer}")
        if self.positions not in ("all", "answer"):
            raise UnlearnBenchError(
                f"rmu positions must be 'all' or 'answer', not {self.positions!r}"
            )
        if self.param_set not in ("wmdp", "open_unlearning"):
            raise UnlearnBenchError(
                f"rmu param_set must be 'wmdp' or 'open_unlearning', not {self.param_set!r}"
            )


@METHODS.register("rmu")
class RMU(Method):
    """Steer forget activations at one layer toward c*u; pin retain activations to theta0's."""

    name = "rmu"
    needs = frozenset({"forget", "retain", "reference"})
    config_cls = RMUConfig

    def __init__(self, config: RMUConfig, reference: torch.nn.Module | None = None) -> None:
        super().__init__(config, reference)
        self._direction: torch.Tensor | None = None

    @classmethod
    def default_trainable(cls, config: RMUConfig) -> str | None:
        """WMDP's set, ``model.layers.(l-2|l-1|l).mlp.down_proj.weight``; None for every param."""
        if config.param_set == "open_unlearning":
            return None
        blocks = "|".join(str(i) for i in range(max(0, config.layer - 2), config.layer + 1))
        return rf"(^|\.)layers\.({blocks})\.mlp\.down_proj\.weight$"

    def steering_direction(self, hidden_size: int) -> torch.Tensor:
        """Return the fixed unit vector u (float32, CPU), drawn once per instance from ``seed``."""
        if self._direction is None or self._direction.numel() != hidden_size:
            gen = torch.Generator().manual_seed(self.config.seed)
            u = torch.rand(hidden_size, generator=gen)
            self._direction = u / u.norm()
        return self._direction

    def _hidden(self, model: torch.nn.Module, part: TokenBatch) -> torch.Tensor:
        out = model(
            input_ids=part.input_ids, attention_mask=part.attention_mask, output_hidden_states=True
        )
        n_layers = len(out.hidden_states) - 1
        if self.config.layer >= n_layers:
            raise UnlearnBenchError(
                f"rmu layer {self.config.layer} is out of range: the model has {n_layers} "
                f"decoder layers (valid 0..{n_layers - 1})"
            )
        return out.hidden_states[self.config.layer + 1]

    def _mask(self, part: TokenBatch) -> torch.Tensor:
        if self.config.positions == "answer":
            return part.labels != -100
        return part.attention_mask.bool()

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Steer forget activations to a random direction, keep retain activations."""
        assert self.reference is not None  # Method.__init__ enforces it ("reference" in needs)
        forget, retain = batch["forget"], batch["retain"]
        h_forget = self._hidden(model, forget)
        u = self.steering_direction(h_forget.shape[-1]).to(h_forget.device)
        forget_loss = masked_sq_distance(
            h_forget, self.config.steering_coeff * u, self._mask(forget)
        )
        h_retain = self._hidden(model, retain)
        with torch.no_grad():
            h_retain_ref = self._hidden(self.reference, retain)
        retain_loss = masked_sq_distance(h_retain, h_retain_ref, self._mask(retain))
        self.logs = {
            "forget_loss": float(forget_loss.detach()),
            "retain_loss": float(retain_loss.detach()),
        }
        return forget_loss + self.config.alpha * retain_loss
