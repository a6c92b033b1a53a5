"""Golden tests for unlearn_bench.metrics.likelihood; expected values are worked out by hand."""

from __future__ import annotations

import math

import pytest

from unlearn_bench.metrics.likelihood import (
    exact_memorisation,
    extraction_strength,
    length_normalised_probability,
    normalised_probability,
    truth_ratio,
    truth_ratio_correct_share,
    truth_ratio_forget_score,
    truth_ratio_retain_score,
)

L = math.log
TOL = 1e-12


def test_length_normalised_probability_is_geometric_mean_of_token_probs() -> None:
    # exp((log 0.5 + log 0.25) / 2) = (0.5 * 0.25) ** 0.5 = sqrt(0.125)
    got = length_normalised_probability([L(0.5), L(0.25)])
    assert got == pytest.approx(0.3535533905932738, rel=TOL)
    # not the plain product 0.125, not the arithmetic mean 0.375
    assert got != pytest.approx(0.125) and got != pytest.approx(0.375)


def test_length_normalised_probability_single_token_and_certain() -> None:
    assert length_normalised_probability([L(0.2)]) == pytest.approx(0.2, rel=TOL)
    assert length_normalised_probability([0.0, 0.0, 0.0]) == 1.0


@pytest.mark.parametrize("bad", [[], [float("nan")]])
def test_length_normalised_probability_rejects_empty_or_nan(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        length_normalised_probability(bad)


def test_normalised_probability_uses_length_normalised_options() -> None:
    # P(a) = sqrt(0.8 * 0.2) = 0.4; perturbed: 0.1 and (0.5^3)^(1/3) = 0.5
    # 0.4 / (0.4 + 0.1 + 0.5) = 0.4.  Without length normalisation it would be
    # 0.16 / (0.16 + 0.1 + 0.125) = 0.4156, so the test tells the two apart.
    got = normalised_probability([L(0.8), L(0.2)], [[L(0.1)], [L(0.5)] * 3])
    assert got == pytest.approx(0.4, rel=TOL)


def test_normalised_probability_errors() -> None:
    with pytest.raises(ValueError):
        normalised_probability([L(0.5)], [])
    with pytest.raises(ValueError):
        normalised_probability([L(0.5)], [[]])
    with pytest.raises(ValueError):
        normalised_probability([-math.inf], [[-math.inf]])


def test_truth_ratio_uses_geometric_mean_of_perturbed() -> None:
    # paraphrased: 0.5; perturbed: 0.2 and 0.8 -> geometric mean sqrt(0.16) = 0.4
    # R = 0.4 / 0.5 = 0.8 (an arithmetic mean would give 0.5 / 0.5 = 1.0)
    assert truth_ratio([L(0.5)], [[L(0.2)], [L(0.8)]]) == pytest.approx(0.8, rel=TOL)


def test_truth_ratio_length_normalises_each_answer() -> None:
    # paraphrased (0.5 * 0.5)^(1/2) = 0.5; perturbed (0.25^4)^(1/4) = 0.25 and 0.25
    # R = 0.25 / 0.5 = 0.5
    got = truth_ratio([L(0.5), L(0.5)], [[L(0.25)] * 4, [L(0.25)]])
    assert got == pytest.approx(0.5, rel=TOL)


def test_truth_ratio_does_not_underflow() -> None:
    # every token has probability e^-800, far below float range for the whole sequence,
    # but log R = -800 - (-800) = 0 -> R = 1
    assert truth_ratio([-800.0] * 3, [[-800.0] * 5]) == pytest.approx(1.0, rel=TOL)


def test_truth_ratio_errors() -> None:
    with pytest.raises(ValueError):
        truth_ratio([], [[L(0.5)]])
    with pytest.raises(ValueError):
        truth_ratio([L(0.5)], [])


def test_truth_ratio_forget_and_retain_scores() -> None:
    # R = 0.8: min(0.8, 1.25) = 0.8; R = 1.25: min(1.25, 0.8) = 0.8
    assert truth_ratio_forget_score(0.8) == pytest.approx(0.8, rel=TOL)
    assert truth_ratio_forget_score(1.25) == pytest.approx(0.8, rel=TOL)
    assert truth_ratio_forget_score(1.0) == 1.0
    # max(0, 1 - 0.8) = 0.2; max(0, 1 - 1.25) = 0
    assert truth_ratio_retain_score(0.8) == pytest.approx(0.2, rel=TOL)
    assert truth_ratio_retain_score(1.25) == 0.0


@pytest.mark.parametrize("bad", [-1.0, -0.5, float("nan")])
def test_truth_ratio_scores_reject_negative_or_nan(bad: float) -> None:
    with pytest.raises(ValueError):
        truth_ratio_forget_score(bad)
    with pytest.raises(ValueError):
        truth_ratio_retain_score(bad)


def test_truth_ratio_beyond_float_range_gives_its_limits() -> None:
    # A diverged model (GA at lr 10): paraphrased answer at -1000 nats/token, perturbed at -1.
    # log R = -1 - (-1000) = 999 > ln(max float) ~ 709.78, so R is +inf (was: OverflowError).
    r_big = truth_ratio([-1000.0, -1000.0], [[-1.0], [-1.0, -1.0]])
    assert r_big == math.inf
    # The other way round log R = -999: R = e^-999 rounds to 0.0.
    r_small = truth_ratio([-1.0], [[-1000.0], [-1000.0]])
    assert r_small == 0.0
    # min(R, 1/R) tends to 0 at both ends; max(0, 1 - R) is 0 at +inf and 1 at 0.
    assert truth_ratio_forget_score(r_big) == 0.0
    assert truth_ratio_forget_score(r_small) == 0.0
    assert truth_ratio_retain_score(r_big) == 0.0
    assert truth_ratio_retain_score(r_small) == 1.0
    # Pc / (Pc + Pw) = 1 / (1 + e^999) -> 0 and 1 / (1 + e^-999) -> 1.
    assert truth_ratio_correct_share([-1000.0], [[-1.0]]) == 0.0
    assert truth_ratio_correct_share([-1.0], [[-1000.0]]) == 1.0


def test_truth_ratio_with_zero_probabilities() -> None:
    # A token of probability 0 (log-prob -inf) on one side: R = 0 or +inf, scores as limits.
    assert truth_ratio([-math.inf], [[L(0.5)]]) == math.inf
    assert truth_ratio([L(0.5)], [[-math.inf]]) == 0.0
    # Both sides probability 0: 0/0 has no value, an error rather than a made-up number.
    with pytest.raises(ValueError, match="undefined"):
        truth_ratio([-math.inf], [[-math.inf]])
    with pytest.raises(ValueError, match="undefined"):
        truth_ratio_correct_share([-math.inf], [[-math.inf]])


def test_truth_ratio_correct_share() -> None:
    # Pc = 0.5, Pw = sqrt(0.2 * 0.8) = 0.4 -> 0.5 / (0.5 + 0.4) = 5/9
    got = truth_ratio_correct_share([L(0.5)], [[L(0.2)], [L(0.8)]])
    assert got == pytest.approx(5 / 9, rel=TOL)


def test_exact_memorisation() -> None:
    # 3 of 4 tokens match
    assert exact_memorisation([True, False, True, True]) == 0.75
    assert exact_memorisation([False, False]) == 0.0
    with pytest.raises(ValueError):
        exact_memorisation([])


@pytest.mark.parametrize(
    ("matches", "expected"),
    [
        ([True, True, True, True], 1.0),  # k* = 0 -> 1 - 0/4
        ([False, True, True, True], 0.75),  # k* = 1 -> 1 - 1/4
        ([True, False, True, True], 0.5),  # k* = 2 -> 1 - 2/4 (early matches don't count)
        ([True, True, True, False], 0.0),  # last mismatches: k* = 4 -> 0
        ([False, False, False], 0.0),  # k* = 3 -> 0 (open-unlearning's loop would give 1/3)
        ([True, False, True], 1 - 2 / 3),  # k* = 2 -> 1/3
    ],
)
def test_extraction_strength(matches: list[bool], expected: float) -> None:
    assert extraction_strength(matches) == pytest.approx(expected, abs=TOL)


def test_extraction_strength_rejects_empty() -> None:
    with pytest.raises(ValueError):
        extraction_strength([])
