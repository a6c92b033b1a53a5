"""Golden tests for unlearn_bench.metrics.stats; expected values are worked out by hand."""

from __future__ import annotations

import math

import pytest

from unlearn_bench.metrics.stats import (
    forget_quality,
    harmonic_mean,
    mean_and_stderr,
    model_utility,
    privleak,
)

TOL = 1e-12


def test_forget_quality_identical_samples_is_one() -> None:
    ratios = [0.3, 0.7, 1.1, 2.0]
    assert forget_quality(ratios, ratios) == 1.0


def test_forget_quality_fully_separated_exact_p_values() -> None:
    # D = 1 when one sample lies entirely below the other. Under H0 every split of the pooled
    # ranks is equally likely; only 2 of C(6, 3) = 20 splits give D = 1 -> p = 2/20 = 0.1.
    assert forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1, rel=1e-9)
    # n = m = 2: 2 of C(4, 2) = 6 splits -> p = 1/3
    assert forget_quality([0.1, 0.2], [3.0, 4.0]) == pytest.approx(1 / 3, rel=1e-9)


def test_forget_quality_invariant_to_inverse_ratio() -> None:
    # R -> 1/R reverses the order of the pooled sample; D and hence p are unchanged.
    unlearned, retain = [0.5, 0.8, 2.0, 4.0], [0.25, 1.0, 1.25, 5.0]
    inverse = forget_quality([1 / r for r in unlearned], [1 / r for r in retain])
    assert forget_quality(unlearned, retain) == pytest.approx(inverse, rel=1e-12)


def test_forget_quality_rejects_empty() -> None:
    with pytest.raises(ValueError):
        forget_quality([], [1.0])
    with pytest.raises(ValueError):
        forget_quality([1.0], [])


def test_harmonic_mean() -> None:
    # 3 / (1/1 + 1/0.5 + 1/0.25) = 3 / (1 + 2 + 4) = 3/7
    assert harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7, rel=TOL)
    # 2 / (1/0.5 + 1/0.5) = 0.5
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5, rel=TOL)


def test_harmonic_mean_zero_gives_zero_and_bad_inputs_raise() -> None:
    assert harmonic_mean([0.9, 0.0, 0.5]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([0.5, -0.1])
    with pytest.raises(ValueError):
        harmonic_mean([])
    with pytest.raises(ValueError):
        harmonic_mean([0.5, float("nan")])


NINE = [
    f"{split}_{metric}"
    for split in ("retain", "real_authors", "world_facts")
    for metric in ("probability", "rouge", "truth_ratio")
]


def test_model_utility_harmonic_mean_of_nine() -> None:
    # six values 0.5 and three values 0.25: 9 / (6 * 2 + 3 * 4) = 9 / 24 = 0.375
    values = {key: (0.25 if key.endswith("truth_ratio") else 0.5) for key in NINE}
    assert model_utility(values) == pytest.approx(0.375, rel=TOL)


def test_model_utility_missing_key_is_named() -> None:
    values = {key: 0.5 for key in NINE if key != "world_facts_rouge"}
    with pytest.raises(ValueError, match="world_facts_rouge"):
        model_utility(values)


def test_model_utility_rejects_unexpected_key() -> None:
    values = {key: 0.5 for key in NINE} | {"forget_rouge": 0.1}
    with pytest.raises(ValueError, match="forget_rouge"):
        model_utility(values)


def test_privleak() -> None:
    # MUSE News target: (0.001 - 0.4772) / 0.4772 * 100 = -0.4762 / 0.4772 * 100 = -99.790...
    assert privleak(0.001, 0.4772) == pytest.approx(-0.4762 / 0.4772 * 100, rel=TOL)
    assert privleak(0.001, 0.4772) == pytest.approx(-99.7904, abs=1e-4)
    # (0.6 - 0.5) / 0.5 * 100 = 20; equal AUCs give 0
    assert privleak(0.6, 0.5) == pytest.approx(20.0, rel=TOL)
    assert privleak(0.4772, 0.4772) == 0.0


def test_privleak_rejects_bad_auc() -> None:
    with pytest.raises(ValueError):
        privleak(0.5, 0.0)
    with pytest.raises(ValueError):
        privleak(1.5, 0.5)


def test_mean_and_stderr() -> None:
    # [1, 2, 3, 4]: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5;
    # sample var 5/3; stderr = sqrt(5/3) / sqrt(4) = sqrt(5/12)
    mean, stderr = mean_and_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5, rel=TOL)
    assert stderr == pytest.approx(math.sqrt(5 / 12), rel=TOL)


def test_mean_and_stderr_single_value_and_empty() -> None:
    mean, stderr = mean_and_stderr([0.7])
    assert mean == 0.7 and math.isnan(stderr)
    with pytest.raises(ValueError):
        mean_and_stderr([])
