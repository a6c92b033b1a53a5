"""ppo_rlhf refusals that need no model: config ranges, TRL without PPO, unsupported settings."""

from __future__ import annotations

import sys

import pytest

from unlearn_bench.config import ControlConfig, UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import METHODS
from unlearn_bench.train.rlhf import check_rlhf, trl_version


@pytest.mark.parametrize(
    "args,word",
    [({"reward_lr": 0}, "reward_lr"), ({"ppo_epochs": 0}, "ppo_epochs"),
     ({"episodes": 0}, "episodes"), ({"response_length": 0}, "response_length"),
     ({"kl_coef": -0.1}, "kl_coef"), ({"temperature": 0}, "temperature")],
)  # fmt: skip
def test_out_of_range_settings_are_refused(args, word) -> None:
    with pytest.raises(UnlearnBenchError, match=word):
        METHODS.get("ppo_rlhf").config_cls(**args)


def test_trl_without_ppo_is_a_one_line_refusal(monkeypatch) -> None:
    # TRL >= 1.13 has no trl.experimental.ppo: importing it fails as a missing module does.
    monkeypatch.setitem(sys.modules, "trl.experimental.ppo", None)
    with pytest.raises(UnlearnBenchError, match=r"TRL 1.13 removed PPO.*unlearn-bench\[rlhf\]"):
        trl_version()


def test_settings_trl_cannot_honour_are_refused() -> None:
    pytest.importorskip("trl.experimental.ppo")
    check_rlhf(UnlearnConfig(method="ppo_rlhf"), 1)  # the defaults are fine
    cases = {
        "control": UnlearnConfig(method="ppo_rlhf", control=ControlConfig(eval_every=1)),
        "grad_accum": UnlearnConfig(method="ppo_rlhf", grad_accum=2),
        "trainable": UnlearnConfig(method="ppo_rlhf", trainable="mlp"),
    }
    for word, ucfg in cases.items():
        with pytest.raises(UnlearnBenchError, match=f"does not support {word}"):
            check_rlhf(ucfg, 1)
    with pytest.raises(UnlearnBenchError, match="multiple processes"):
        check_rlhf(UnlearnConfig(method="ppo_rlhf"), 2)
