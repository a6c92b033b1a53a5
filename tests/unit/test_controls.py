"""Controls against over-unlearning: selection rules, early stopping, model mixing, the probe.

Golden values are worked by hand from the rules in unlearn_bench/train/controls.py's docstring.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from unlearn_bench.config import ControlConfig, RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import TokenBatch
from unlearn_bench.train.controls import Controller, mix_state, probe, search_mix

# Three evaluations: the start, a moderate and an over-unlearned model.
STEP0 = {"forget_nll": 0.2, "forget_prob": 0.8, "retain_nll": 0.3, "retain_prob": 0.7}
STEP5 = {"forget_nll": 1.2, "forget_prob": 0.3, "retain_nll": 0.5, "retain_prob": 0.6}
STEP10 = {"forget_nll": 2.3, "forget_prob": 0.1, "retain_nll": 1.2, "retain_prob": 0.3}


def observe_all(config: ControlConfig) -> tuple[Controller, list]:
    controller = Controller(config)
    decisions = [controller.observe(s, m) for s, m in ((0, STEP0), (5, STEP5), (10, STEP10))]
    return controller, decisions


def test_forget_utility_mean_rule_by_hand() -> None:
    controller, decisions = observe_all(ControlConfig(eval_every=5, select="forget_utility_mean"))
    # ((1 - forget_prob) + retain_prob) / 2: step 0 (0.2 + 0.7)/2 = 0.45,
    # step 5 (0.7 + 0.6)/2 = 0.65, step 10 (0.9 + 0.3)/2 = 0.60 -> step 5 wins.
    scores = [d.metrics["select_score"] for d in decisions]
    assert scores == pytest.approx([0.45, 0.65, 0.60])
    assert [d.save_best for d in decisions] == [True, True, False]
    assert controller.best_step == 5 and controller.best_score == pytest.approx(0.65)
    # utility_ratio = retain_prob / 0.7: 1, 0.6/0.7, 0.3/0.7.
    ratios = [d.metrics["utility_ratio"] for d in decisions]
    assert ratios == pytest.approx([1.0, 0.857142857, 0.428571429])
    assert all(d.stop_reason is None for d in decisions)


def test_utility_floor_rule_by_hand() -> None:
    # Floor 0.8 x 0.7 = 0.56: step 5 (0.6) qualifies, step 10 (0.3) does not.
    # Scores 1 - forget_prob: step 0 0.2, step 5 0.7; step 10 is not eligible (None).
    controller, decisions = observe_all(
        ControlConfig(eval_every=5, select="utility_floor", utility_floor=0.8)
    )
    assert decisions[0].metrics["select_score"] == pytest.approx(0.2)
    assert decisions[1].metrics["select_score"] == pytest.approx(0.7)
    assert "select_score" not in decisions[2].metrics
    assert controller.best_step == 5


def test_last_rule_never_saves_a_best() -> None:
    controller, decisions = observe_all(ControlConfig(eval_every=5))
    assert not any(d.save_best for d in decisions) and controller.best_step is None


def test_stop_when_forget_nll_passes_bound() -> None:
    # The bound 1.0 is passed at step 5 (1.2 >= 1.0); step 0 never stops a run.
    _, decisions = observe_all(ControlConfig(eval_every=5, stop_forget_nll=1.0))
    assert decisions[0].stop_reason is None
    assert decisions[1].stop_reason and "1.2 >= bound 1" in decisions[1].stop_reason


def test_stop_below_utility_floor() -> None:
    # Floor 0.9 x 0.7 = 0.63: step 5's 0.6 is already under it.
    controller, decisions = observe_all(
        ControlConfig(eval_every=5, utility_floor=0.9, stop_below_floor=True)
    )
    assert decisions[1].stop_reason and "retain_prob fell" in decisions[1].stop_reason
    assert controller.summary()["stop_reason"] == decisions[1].stop_reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"select": "best"}, "select must be one of"),
        ({"mix": True}, "needs utility_floor"),
        ({"select": "forget_utility_mean"}, "need eval_every"),
        ({"stop_forget_nll": 3.0}, "need eval_every"),
        ({"utility_floor": 1.5, "eval_every": 1}, "utility_floor must be in (0, 1]"),
        ({"eval_every": 0}, "eval_every must be >= 1"),
        ({"mix": True, "utility_floor": 0.9, "mix_grid": 1}, "mix_grid must be >= 2"),
    ],
)
def test_bad_control_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UnlearnBenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ControlConfig(**kwargs)


def test_control_settings_parse_from_run_config() -> None:
    config = RunConfig.from_dict(
        {
            "task": "synthetic_people",
            "unlearn": [{"method": "npo", "control": {"eval_every": 2, "select": "utility_floor",
                                                     "utility_floor": 0.9, "mix": True}}],
        }
    )  # fmt: skip
    control = config.unlearn[0].control
    assert (control.eval_every, control.select, control.utility_floor, control.mix) == (
        2, "utility_floor", 0.9, True,
    )  # fmt: skip
    with pytest.raises(UnlearnBenchError, match="unknown key 'every'"):
        RunConfig.from_dict({"task": "t", "unlearn": [{"control": {"every": 2}}]})


def test_mix_state_by_hand() -> None:
    theta0 = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor([7])}
    theta = {"w": torch.tensor([3.0, -2.0]), "n": torch.tensor([9])}
    # r = 0.25: 0.25*1 + 0.75*3 = 2.5 and 0.25*2 + 0.75*(-2) = -1.0; integer buffers from theta.
    mixed = mix_state(theta0, theta, 0.25)
    assert mixed["w"].tolist() == [2.5, -1.0]
    assert mixed["n"].tolist() == [9]
    assert mix_state(theta0, theta, 1.0)["w"].tolist() == [1.0, 2.0]
    assert mix_state(theta0, theta, 0.0)["w"].tolist() == [3.0, -2.0]


def test_search_mix_takes_smallest_r_meeting_floor_even_if_not_monotone() -> None:
    utilities = {0.0: 0.1, 0.25: 0.6, 0.5: 0.4, 0.75: 0.7, 1.0: 0.8}
    r, tried = search_mix(lambda r: utilities[r], floor_value=0.5, grid=5)
    assert r == 0.25
    assert [t["r"] for t in tried] == [0.0, 0.25]  # stops at the first r that qualifies
    r, _ = search_mix(lambda r: utilities[r], floor_value=0.75, grid=5)
    assert r == 1.0


class FixedLogits(torch.nn.Module):
    """Logits [0, ln 3] at every position: p(token 1) = 3/4, p(token 0) = 1/4."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        logits = torch.tensor([0.0, math.log(3.0)]).expand(*input_ids.shape, 2)
        return SimpleNamespace(logits=logits)


def test_probe_by_hand() -> None:
    ids = torch.tensor([[0, 1, 1], [0, 1, 0]])
    mask = torch.ones_like(ids)
    # Labels: item 1 scores tokens (1, 0), item 2 scores token 1 only.
    labels = torch.tensor([[-100, 1, 0], [-100, 1, -100]])
    out = probe(FixedLogits(), {"forget": [TokenBatch(ids, mask, labels)]})
    # Item 1: NLL = (ln(4/3) + ln 4) / 2 = (0.287682 + 1.386294) / 2 = 0.836988,
    #         prob = exp(-0.836988) = sqrt(3/4 * 1/4) = 0.433013.
    # Item 2: NLL = ln(4/3) = 0.287682, prob = 0.75.
    assert out["forget_nll"] == pytest.approx((0.836988 + 0.287682) / 2, abs=1e-6)
    assert out["forget_prob"] == pytest.approx((0.433013 + 0.75) / 2, abs=1e-6)


def test_standard_loss_columns_of_the_training_log() -> None:
    from unlearn_bench.train.loop import standard_losses

    # GA-style methods log forget_nll only: forget_loss is its negation; no retain term.
    assert standard_losses({"forget_nll": 2.0}) == {"forget_loss": -2.0}
    # A method's own forget term wins; retain_nll comes before retain_kl.
    logs = {"forget_loss": 1.0, "forget_nll": 3.0, "retain_nll": 0.2, "retain_kl": 0.1}
    assert standard_losses(logs) == {"forget_loss": 1.0, "retain_loss": 0.2}
    assert standard_losses({"forget_nll": 2.0, "retain_kl": 0.5}) == {
        "forget_loss": -2.0, "retain_loss": 0.5,
    }  # fmt: skip
