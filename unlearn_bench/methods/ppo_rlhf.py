"""RLHF with PPO as an alignment baseline (Ouyang et al. 2022; Yao et al. 2023's "RLHF" row).

Two phases, both with TRL's trainers rather than PPO written by hand (issue 16):

1. a reward model (the start model with a scalar head, ``AutoModelForSequenceClassification``,
   ``num_labels=1``) trained with TRL's ``RewardTrainer`` on PKU-SafeRLHF pairs: the safe
   response to each forget prompt chosen over the unsafe (forget) one, Bradley-Terry loss
   ``-log sigmoid(r(x, y_w) - r(x, y_l))``;
2. PPO from the start model with TRL's ``PPOTrainer`` on the forget prompts, scored by that
   reward model, with a KL penalty to the frozen start model; the value model starts from the
   reward model, as in TRL's PPO example.

TRL removed PPO in 1.13 (huggingface/trl#7020); ``trl.experimental.ppo`` exists in TRL 1.10 to
1.12, so the ``rlhf`` extra pins ``trl>=1.10,<1.13``. Without it the method is refused at
planning. The whole stage is :func:`unlearn_bench.train.rlhf.rlhf_stage`, not the shared
per-step loop: PPO alternates generation and optimisation, which a per-batch loss cannot express.
Defaults are TRL's (reward: ``RewardConfig``; PPO: ``PPOConfig``) unless noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import METHODS, Method, UnlearnBatch

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PPORLHFConfig:
    """Reward-model and PPO settings; the policy's learning rate and batch size are the run's."""

    reward_lr: float = 1e-4
    """Reward model learning rate [TRL RewardConfig default 1e-4]."""
    reward_epochs: float = 1.0
    """Passes of the reward trainer over the pairs [TRL/transformers default 3; 1 here, a
    small budget as the issue allows, recorded in the run header]."""
    episodes: int | None = None
    """PPO episodes (prompts rolled out); None = one per forget prompt [PPOConfig total_episodes
    default: one epoch of the dataset]."""
    ppo_epochs: int = 4
    """PPO optimisation epochs per rollout batch [PPOConfig num_ppo_epochs default 4]."""
    response_length: int = 53
    """Tokens generated per rollout [PPOConfig default 53]."""
    kl_coef: float = 0.05
    """KL penalty to the start model [PPOConfig default 0.05]."""
    temperature: float = 0.7
    """Rollout sampling temperature [PPOConfig default 0.7]."""

    def __post_init__(self) -> None:
        checks = {
            "reward_lr": self.reward_lr > 0, "reward_epochs": self.reward_epochs > 0,
            "episodes": self.episodes is None or self.episodes >= 1,
            "ppo_epochs": self.ppo_epochs >= 1, "response_length": self.response_length >= 1,
            "kl_coef": self.kl_coef >= 0, "temperature": self.temperature > 0,
        }  # fmt: skip
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UnlearnBenchError(f"ppo_rlhf {bad[0]} out of range: {getattr(self, bad[0])}")


@METHODS.register("ppo_rlhf")
class PPORLHF(Method):
    """Reward model on safe-vs-unsafe pairs, then PPO against it (TRL); its own stage."""

    name = "ppo_rlhf"
    needs = frozenset({"forget", "safe"})
    config_cls = PPORLHFConfig
    #: The stage that trains it (train/rlhf.py) instead of the shared per-step loop.
    own_stage: ClassVar[str] = "rlhf"

    def loss(self, model: torch.nn.Module, batch: UnlearnBatch) -> torch.Tensor:
        """Never called: PPO is not a per-batch loss; the rlhf stage trains this method."""
        raise UnlearnBenchError("ppo_rlhf trains in its own stage (train/rlhf.py), not the loop")
