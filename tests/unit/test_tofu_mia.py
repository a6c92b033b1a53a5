"""Golden tests for TOFU's MIA suite: per-sample scores, AUCs, PrivLeak, the Reference attack.

Every expected number is worked out by hand in the comments.
"""

from __future__ import annotations

import pytest

from unlearn_bench.metrics import DERIVED_METRICS, METRICS
from unlearn_bench.metrics.views import RunView
from unlearn_bench.scoring import as_reference

TOL = 1e-12


def _sample(index: int, logprobs: list[float], eval_set: str = "forget", **obs: object) -> dict:
    return {
        "eval_set": eval_set,
        "index": index,
        "question": f"q{index}",
        "answer": "ab",
        "obs": {"answer": {"logprobs": logprobs, "greedy": [True] * len(logprobs)}, **obs},
    }


def _view(forget: list[list[float]], holdout: list[list[float]], label: str = "run") -> RunView:
    return RunView(
        label,
        {
            "forget": [_sample(i, lp) for i, lp in enumerate(forget)],
            "holdout": [_sample(i, lp, "holdout") for i, lp in enumerate(holdout)],
        },
        {},
    )


def _metric(name: str, sample: dict) -> float:
    return METRICS.get(name).fn(sample)


def test_per_sample_attack_scores() -> None:
    sample = _sample(
        0,
        [-1.0, -2.0, -3.0, -4.0, -5.0],
        answer_vocab_stats={
            "means": [-1.5, -1.0, -2.0, -3.0, -4.0],
            "stds": [0.5, 2.0, 1.0, 1.0, 0.5],
        },
        answer_grad_norm={"l2": 3.0, "mean_param_l2": 1.5},
    )
    # LOSS: mean log-prob = (-1 - 2 - 3 - 4 - 5) / 5 = -3
    assert _metric("mia_loss", sample) == pytest.approx(-3.0, rel=TOL)
    # ZLib: zlib.compress(b"ab") is 10 bytes (see test_metrics_mia) -> -3 / 10
    assert _metric("mia_zlib", sample) == pytest.approx(-0.3, rel=TOL)
    # Min-40%: floor(5 * 0.4) = 2 lowest: (-5 + -4) / 2
    assert _metric("mia_min_k", sample) == pytest.approx(-4.5, rel=TOL)
    # Min-40%++: z = (0.5/0.5, -1/2, -1/1, -1/1, -1/0.5) = (1, -0.5, -1, -1, -2); lowest 2 -> -1.5
    assert _metric("mia_min_k_plus_plus", sample) == pytest.approx(-1.5, rel=TOL)
    # GradNorm: member-ness is the negated norm
    assert _metric("mia_gradnorm", sample) == -3.0
    assert _metric("mia_gradnorm_mean_param", sample) == -1.5


def test_attack_auc_standard_orientation() -> None:
    # One-token answers, so LOSS = Min-K% = ZLib x 10 = the single log-prob.
    view = _view([[-1.0], [-2.0], [-3.0]], [[-2.5], [-4.0]])
    # Pairs (member, non-member) where the member scores higher: -1 beats both, -2 beats both,
    # -3 beats only -4 -> 5 of 6.
    for name in ("mia_loss_auc", "mia_min_k_auc", "mia_zlib_auc"):
        result = DERIVED_METRICS.get(name).fn(view, None)
        assert result.value == pytest.approx(5 / 6, rel=TOL), name
        assert "standard" in result.note and "n_forget=3" in result.note


def test_auc_counts_ties_as_half() -> None:
    view = _view([[-1.0], [-2.0]], [[-1.0], [-2.0]])
    # Pairs: (-1,-1) tie 0.5, (-1,-2) 1, (-2,-1) 0, (-2,-2) tie 0.5 -> 2 / 4
    assert DERIVED_METRICS.get("mia_loss_auc").fn(view, None).value == pytest.approx(0.5)


def test_privleak_against_a_retain_run() -> None:
    run = _view([[-1.0], [-2.0], [-3.0]], [[-2.5], [-4.0]])
    retain = _view([[-1.0], [-3.0]], [[-2.0], [-2.0]], label="retain")
    # Standard AUCs: run 5/6 (above); retain: -1 beats both -2s, -3 beats neither -> 2/4.
    # MUSE orientation = 1 - standard: run 1/6, retain 1/2.
    # PrivLeak = (1/6 - 1/2) / (1/2) x 100 = (-1/3) x 2 x 100 = -66.666...
    result = DERIVED_METRICS.get("tofu_privleak").fn(run, as_reference(retain))
    assert result.value == pytest.approx(-200 / 3, rel=1e-12)
    assert result.extra["reference_auc"] == pytest.approx(0.5)
    # The retain model against itself: 0.
    assert DERIVED_METRICS.get("tofu_privleak").fn(
        retain, as_reference(retain)
    ).value == pytest.approx(0.0)
    missing = DERIVED_METRICS.get("tofu_privleak").fn(run, None)
    assert missing.value is None and "left empty" in missing.note


def test_reference_attack_pairs_items_by_index() -> None:
    run = _view([[-1.0], [-2.0], [-3.0]], [[-2.5], [-4.0]])
    reference = _view([[-2.0], [-2.0], [-2.0]], [[-2.0], [-2.0]], label="retain")
    # Member-ness = log p(target) - log p(reference): forget (1, 0, -1), holdout (-0.5, -2).
    # 1 and 0 beat both holdout scores, -1 beats only -2 -> 5/6.
    fn = DERIVED_METRICS.get("mia_reference_auc").fn
    assert fn(run, as_reference(reference)).value == pytest.approx(5 / 6, rel=TOL)
    # A reference covering forget items 0 and 1 only: (1, 0) vs (-0.5, -2) -> 4/4.
    partial = _view([[-2.0], [-2.0]], [[-2.0], [-2.0]], label="partial")
    assert fn(run, as_reference(partial)).value == pytest.approx(1.0)
    # Against itself every score is 0: all ties -> 0.5.
    assert fn(reference, as_reference(reference)).value == pytest.approx(0.5)
    assert fn(run, None).value is None


def test_vocab_stats_and_grad_attacks_declare_their_capabilities() -> None:
    assert METRICS.get("mia_min_k_plus_plus").capabilities == {"logprobs", "vocab_stats"}
    assert METRICS.get("mia_gradnorm").capabilities == {"grad"}
    assert "answer_vocab_stats" in METRICS.get("mia_min_k_plus_plus").needs
    assert "answer_grad_norm" in METRICS.get("mia_gradnorm_mean_param").needs
