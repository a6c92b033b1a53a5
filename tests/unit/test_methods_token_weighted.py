"""UNDIAL, CE-U, WGA, SatImp and PDU losses against plain-Python arithmetic from the papers.

The batch has two rows over a 3-token vocabulary: row 0 has a masked prompt token and a padded
last position, row 1 a two-token masked prompt. The "model" returns fixed logits, so each
method's real ``loss`` runs and the expected value is recomputed here with ``math`` only.
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import TokenBatch, UnlearnBatch, build_method

LOGITS = [
    [[0.5, 1.0, -1.0], [2.0, 0.0, 1.0], [0.0, 0.3, 0.1], [9.0, 9.0, 9.0]],
    [[1.0, 1.0, 1.0], [0.2, -0.4, 1.5], [1.2, 0.7, -0.3], [0.0, 0.0, 0.0]],
]
REF_LOGITS = [
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
    [[0.0, 0.0, 0.0], [1.0, 0.5, -0.5], [0.3, 0.3, 1.0], [0.0, 0.0, 0.0]],
]
# label at t is predicted by logits at t-1: row 0 scores (t-1=0, y=1), (1, 2); row 1 (1, 0), (2, 2)
LABELS = [[-100, 1, 2, -100], [-100, -100, 0, 2]]
SCORED = [[(0, 1), (1, 2)], [(1, 0), (2, 2)]]
RETAIN_NLL_LOGITS = [[[0.0, 0.0, 0.0]] * 2]  # uniform: retain NLL = log 3
RETAIN_LABELS = [[-100, 1]]


class FixedLogits(torch.nn.Module):
    """Returns a trainable logits tensor for the forget rows and a fixed one for retain."""

    def __init__(self, forget: list, retain: list = RETAIN_NLL_LOGITS) -> None:
        super().__init__()
        self.forget = torch.nn.Parameter(torch.tensor(forget))
        self.retain = torch.tensor(retain)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        logits = self.forget if input_ids.shape[0] == 2 else self.retain
        return type("Out", (), {"logits": logits})()


def batch() -> UnlearnBatch:
    forget = torch.tensor(LABELS)
    retain = torch.tensor(RETAIN_LABELS)
    return UnlearnBatch(
        {
            "forget": TokenBatch(forget.clamp(min=0), torch.ones_like(forget), forget),
            "retain": TokenBatch(retain.clamp(min=0), torch.ones_like(retain), retain),
        }
    )


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) if v != -math.inf else 0.0 for v in z]
    return [v / sum(e) for v in e]


def per_sample_mean(term) -> float:
    """Mean over samples of the mean over each sample's scored tokens of term(row, t, y)."""
    return sum(sum(term(r, t, y) for t, y in s) / len(s) for r, s in enumerate(SCORED)) / 2


def soft_ce(target: list[float], z: list[float]) -> float:
    q, p = softmax(target), softmax(z)
    return -sum(qv * math.log(pv) for qv, pv in zip(q, p, strict=True))


def method_loss(name: str, reference=None, **args) -> float:
    cls, config = build_method(name, args)
    ref = FixedLogits(REF_LOGITS) if reference else None
    return float(cls(config, reference=ref).loss(FixedLogits(LOGITS), batch()).detach())


def test_undial_matches_adjusted_teacher_cross_entropy() -> None:
    beta = 2.0

    def term(r: int, t: int, y: int) -> float:
        target = [v - (beta if i == y else 0.0) for i, v in enumerate(REF_LOGITS[r][t])]
        return soft_ce(target, LOGITS[r][t])

    got = method_loss("undial", reference=True, beta=beta)
    assert got == pytest.approx(per_sample_mean(term), rel=1e-5)


def test_ce_u_target_drops_the_true_token() -> None:
    def term(r: int, t: int, y: int) -> float:
        target = [-math.inf if i == y else v for i, v in enumerate(LOGITS[r][t])]
        return soft_ce(target, LOGITS[r][t])

    assert method_loss("ce_u") == pytest.approx(per_sample_mean(term), rel=1e-5)
    # Variant: the first answer token of each row is not scored (row 0 keeps t=1, row 1 t=2).
    only_second = (
        soft_ce([2.0, 0.0, -math.inf], LOGITS[0][1]) + soft_ce([1.2, 0.7, -math.inf], LOGITS[1][2])
    ) / 2
    assert method_loss("ce_u", ignore_first_token=True) == pytest.approx(only_second, rel=1e-5)


@pytest.mark.parametrize(
    ("name", "args", "b1", "b2", "scale"),
    [
        ("wga", {"beta": 1.0, "retain_weight": 0.0}, 1.0, 0.0, 1.0),
        ("wga", {"beta": 2.5, "retain_weight": 0.5}, 2.5, 0.0, 1.0),
        ("satimp", {"retain_weight": 0.0}, 5.0, 1.0, 0.1),
        ("satimp", {"beta1": 2.0, "beta2": 3.0, "gamma": 1.0, "retain_weight": 0.5}, 2.0, 3.0, 1.0),
    ],
)
def test_weighted_ascent(name: str, args: dict, b1: float, b2: float, scale: float) -> None:
    def term(r: int, t: int, y: int) -> float:
        p = softmax(LOGITS[r][t])[y]
        return p**b1 * (1 - p) ** b2 * math.log(p)

    expected = scale * per_sample_mean(term) + args["retain_weight"] * math.log(3)
    assert method_loss(name, **args) == pytest.approx(expected, rel=1e-5)


def test_pdu_lagrangian_and_dual_update() -> None:
    def term(r: int, t: int, y: int) -> float:
        z = LOGITS[r][t]
        return (max(z) - sum(z) / 3) ** 2

    cls, config = build_method("pdu", {"epsilon": 0.5, "dual_step_size": 2.0})
    method = cls(config)
    loss = float(method.loss(FixedLogits(LOGITS), batch()).detach())
    assert loss == pytest.approx(per_sample_mean(term) + 1.0 * math.log(3), rel=1e-5)
    assert method.dual == pytest.approx(1.0 + 2.0 * (math.log(3) - 0.5))
    cls, config = build_method("pdu", {"epsilon": 5.0, "initial_dual": 0.1})
    method = cls(config)
    method.loss(FixedLogits(LOGITS), batch())
    assert method.dual == 0.0  # satisfied constraint: lambda projected back to 0


def test_weights_are_detached() -> None:
    """WGA's gradient is w * dlog p with w held constant, not d(w log p)."""
    model = FixedLogits(LOGITS)
    cls, config = build_method("wga", {"beta": 1.0, "retain_weight": 0.0})
    cls(config).loss(model, batch()).backward()
    p = softmax(LOGITS[0][0])
    # d/dz_v of (1/2)(1/2) p_y log p_y with p_y constant: (1/4) p_y (1[v=y] - p_v)
    expected = [0.25 * p[1] * ((1.0 if v == 1 else 0.0) - p[v]) for v in range(3)]
    assert model.forget.grad[0, 0].tolist() == pytest.approx(expected, rel=1e-5)


def test_ls_lists_them_with_their_papers(capsys: pytest.CaptureFixture[str]) -> None:
    from unlearn_bench.cli import main

    assert main(["ls", "methods"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    for name, arxiv in [
        ("undial", "2402.10052"),
        ("ce_u", "2503.01224"),
        ("wga", "2502.19301"),
        ("satimp", "2505.11953"),
        ("pdu", "2506.05314"),
    ]:
        assert arxiv in lines[name]


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(UnlearnBenchError, match="missing 1 required.*epsilon"):
        build_method("pdu", {})
    with pytest.raises(UnlearnBenchError, match="unexpected keyword.*gamma"):
        build_method("wga", {"gamma": 1.0})
