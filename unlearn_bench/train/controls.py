"""Controls against excessive unlearning ("Unlearning with Control", Wang et al. 2024).

Bounded gradient ascent is a method (``bounded_ga``). This module adds the other two controls:

* **Checkpoint selection / early stopping.** Every ``eval_every`` steps (and at step 0, the
  starting model, and at the last step) the trainer evaluates four probe numbers on fixed items:
  ``forget_nll`` / ``retain_nll``, the mean over items of the per-item mean answer-token NLL, and
  ``forget_prob`` / ``retain_prob``, the mean over items of exp(-that NLL) = P(a|q)^(1/|a|), i.e.
  TOFU's "probability" (SPEC). Model utility here is ``retain_prob``; forget efficacy is
  ``1 - forget_prob``. Selection rules (``select``), ties going to the earlier step:

  - ``last``: keep the final weights (no selection).
  - ``forget_utility_mean``: maximise ((1 - forget_prob) + retain_prob) / 2.
  - ``utility_floor``: maximise 1 - forget_prob among steps whose retain_prob is at least
    ``utility_floor`` x the starting model's retain_prob (step 0 always qualifies).

  Early stopping: stop after the first evaluation with ``forget_nll >= stop_forget_nll`` (the
  forget loss passed its bound), and/or, with ``stop_below_floor``, after the first evaluation
  whose utility fell under the floor.
* **Model mixing**: theta_r = r theta_0 + (1 - r) theta. After training, r runs over the grid
  0, 1/(g-1), ..., 1 (g = ``mix_grid``) and the smallest r whose retain_prob reaches
  ``utility_floor`` x retain_prob(theta_0) is kept: the least pull back toward theta_0 that
  meets the floor. r = 1 is theta_0 itself, which meets any floor <= 1, so the search always ends.
  The grid (not bisection) is deliberate: utility need not be monotone in r.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unlearn_bench.config import SELECT_RULES, ControlConfig
from unlearn_bench.errors import UnlearnBenchError

if TYPE_CHECKING:
    import torch

    from unlearn_bench.methods.base import TokenBatch


@dataclass(frozen=True)
class Decision:
    """What the controller concluded from one evaluation."""

    metrics: dict[str, float]
    save_best: bool
    stop_reason: str | None


@dataclass
class Controller:
    """Turns probe metrics at evaluated steps into keep-best / stop decisions."""

    config: ControlConfig
    baseline: dict[str, float] | None = None
    best_step: int | None = None
    best_score: float | None = None
    stop_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def score(self, metrics: dict[str, float]) -> float | None:
        """The selection score of one evaluation (None: not eligible)."""
        rule = self.config.select
        if rule == "forget_utility_mean":
            return ((1.0 - metrics["forget_prob"]) + metrics["retain_prob"]) / 2.0
        if rule == "utility_floor":
            return 1.0 - metrics["forget_prob"] if self._meets_floor(metrics) else None
        return None

    def _meets_floor(self, metrics: dict[str, float]) -> bool:
        assert self.baseline is not None and self.config.utility_floor is not None
        return metrics["retain_prob"] >= self.config.utility_floor * self.baseline["retain_prob"]

    def observe(self, step: int, metrics: dict[str, float]) -> Decision:
        """Take one evaluation's probe metrics; say whether to keep or stop."""
        if self.baseline is None:
            self.baseline = dict(metrics)
        cfg = self.config
        metrics = dict(metrics)
        if self.baseline.get("retain_prob"):
            metrics["utility_ratio"] = metrics["retain_prob"] / self.baseline["retain_prob"]
        score = self.score(metrics)
        if score is not None:
            metrics["select_score"] = score
        save_best = score is not None and (self.best_score is None or score > self.best_score)
        if save_best:
            self.best_step, self.best_score = step, score
        reason = None
        if (
            step > 0
            and cfg.stop_forget_nll is not None
            and metrics["forget_nll"] >= (cfg.stop_forget_nll)
        ):
            reason = f"forget_nll {metrics['forget_nll']:.4g} >= bound {cfg.stop_forget_nll:g}"
        elif step > 0 and cfg.stop_below_floor and not self._meets_floor(metrics):
            reason = f"retain_prob fell under {cfg.utility_floor:g} x its starting value"
        self.stop_reason = self.stop_reason or reason
        self.history.append({"step": step, **metrics})
        return Decision(metrics, save_best, reason)

    def summary(self) -> dict[str, Any]:
        """The selection rule, the baseline and the chosen step."""
        return {
            "select": self.config.select,
            "rule": SELECT_RULES[self.config.select],
            "baseline": self.baseline,
            "best_step": self.best_step,
            "best_score": self.best_score,
            "stop_reason": self.stop_reason,
            "history": self.history,
        }


def probe(model: torch.nn.Module, parts: dict[str, list[TokenBatch]]) -> dict[str, float]:
    """``<part>_nll`` and ``<part>_prob`` for each part (see the module docstring)."""
    import torch

    from unlearn_bench.methods.losses import mean_token_nll

    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        for name, chunks in parts.items():
            nll = torch.cat(
                [
                    mean_token_nll(
                        model(
                            input_ids=c.input_ids.to(device),
                            attention_mask=c.attention_mask.to(device),
                        ).logits,
                        c.labels.to(device),
                    ).cpu()
                    for c in chunks
                ]
            ).double()
            out[f"{name}_nll"] = float(nll.mean())
            out[f"{name}_prob"] = float(torch.exp(-nll).mean())
    model.train(was_training)
    return out


def mix_state(
    theta0: dict[str, torch.Tensor], theta: dict[str, torch.Tensor], r: float
) -> dict[str, torch.Tensor]:
    """theta_r = r theta0 + (1 - r) theta for floating tensors; other entries come from theta."""
    mixed = {}
    for name, value in theta.items():
        if value.is_floating_point():
            mixed[name] = r * theta0[name].to(value) + (1.0 - r) * value
        else:
            mixed[name] = value
    return mixed


def search_mix(
    utility_at: Callable[[float], float], floor_value: float, grid: int
) -> tuple[float, list[dict[str, float]]]:
    """Smallest r on the grid with utility_at(r) >= floor_value; returns (r, tried values)."""
    tried: list[dict[str, float]] = []
    for i in range(grid):
        r = i / (grid - 1)
        utility = utility_at(r)
        tried.append({"r": r, "retain_prob": utility})
        if utility >= floor_value:
            return r, tried
    raise UnlearnBenchError(  # unreachable for floors <= 1 unless the probe is not deterministic
        f"model mixing: no r in [0, 1] reached retain_prob {floor_value:.4g}; tried {tried}"
    )
