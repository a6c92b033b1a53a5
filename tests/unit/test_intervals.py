"""Intervals never leave a metric's declared range (metrics.intervals, leaderboard.intervals).

Expected values come from the definitions: the Wilson interval as the inversion of the score
test (the roots of a quadratic, not the closed form the code uses), the percentile bootstrap
on samples whose resampling distribution is known by hand, the median by eye.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from unlearn_bench.leaderboard.intervals import range_info
from unlearn_bench.leaderboard.rows import rows_from_records
from unlearn_bench.metrics import DERIVED_METRICS, METRICS
from unlearn_bench.metrics import intervals as iv
from unlearn_bench.runs import find_runs

Z = 1.959963984540054  # Phi^-1(0.975), from tables


def _score_test_roots(k: int, n: int) -> tuple[float, float]:
    """Wilson's interval by definition: the pi with |p - pi| = z sqrt(pi (1 - pi) / n).

    Squared: (1 + z^2/n) pi^2 - (2p + z^2/n) pi + p^2 = 0.
    """
    p = k / n
    roots = np.roots([1 + Z * Z / n, -(2 * p + Z * Z / n), p * p])
    return float(min(roots.real)), float(max(roots.real))


def test_wilson_matches_the_score_test_inversion():
    low, high = iv.wilson(3, 16)
    exp_low, exp_high = _score_test_roots(3, 16)
    assert low == pytest.approx(exp_low, abs=1e-12)
    assert high == pytest.approx(exp_high, abs=1e-12)
    # The Student-t interval the tables printed for this very share: [-0.027, 0.40].
    assert 0.0 < low < 0.1875 < high < 1.0


def test_wilson_at_zero_and_all_successes():
    # k = 0: the lower root is 0 and the upper z^2 / (n + z^2); k = n mirrors it.
    assert iv.wilson(0, 10) == (0.0, pytest.approx(Z * Z / (10 + Z * Z)))
    assert iv.wilson(10, 10) == pytest.approx((10 / (10 + Z * Z), 1.0))


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        iv.wilson(5, 4)
    with pytest.raises(ValueError):
        iv.wilson(0, 0)


def test_bootstrap_of_equal_values_is_the_zero_width_interval_at_that_value():
    ci, method = iv.item_interval([0.37] * 5, (0.0, 1.0), binary=False)
    assert ci == (pytest.approx(0.37), pytest.approx(0.37))
    assert "percentile bootstrap" in method and "seed 0" in method


def test_bootstrap_of_two_extreme_values_spans_them():
    # Resampling (0, 1) gives means 0, 0.5, 1 with probability 1/4, 1/2, 1/4: of 2000
    # resamples far more than 50 sit at each end, so the 2.5% / 97.5% quantiles are 0 and 1.
    ci, _ = iv.item_interval([0.0, 1.0], (0.0, 1.0), binary=False)
    assert ci == (0.0, 1.0)


def test_binary_metric_gets_wilson_and_refuses_other_values():
    ci, method = iv.item_interval([1.0, 0.0, 0.0, 1.0], (0.0, 1.0), binary=True)
    assert ci == pytest.approx(_score_test_roots(2, 4))
    assert method == iv.WILSON
    with pytest.raises(ValueError):
        iv.item_interval([1.0, 0.5], (0.0, 1.0), binary=True)


def test_fewer_than_two_items_get_no_interval():
    assert iv.item_interval([0.4], (0.0, 1.0), binary=False) is None
    assert iv.seed_interval([0.4], (0.0, 1.0)) is None


def test_float_noise_at_a_bound_is_clipped_but_a_real_excess_raises():
    # A cosine of identical embeddings computes as 1 + 1e-7: noise, clipped to 1.
    assert iv.in_range([1.0000001, 0.5], (-1.0, 1.0)) == [1.0, 0.5]
    with pytest.raises(ValueError, match="outside the metric's range"):
        iv.in_range([1.1], (-1.0, 1.0))
    with pytest.raises(ValueError):
        iv.check_within((-0.027, 0.40), (0.0, 1.0))


def test_median_p_value_over_seeds_lists_every_seed():
    value, note = iv.median_p_value([0.9, 0.001, 0.02])
    assert value == 0.02  # the mean would be 0.307, dominated by one seed
    assert "0.9, 0.001, 0.02" in note


def _extremes(bounds: tuple[float, float], binary: bool) -> list[list[float]]:
    """Adversarial samples: all at one end, split between the ends, one outlier."""
    if binary:
        return [[0.0] * 16, [1.0] * 16, [1.0] + [0.0] * 15, [0.0, 1.0], [1.0] * 15 + [0.0]]
    low = bounds[0] if math.isfinite(bounds[0]) else -1e6
    high = bounds[1] if math.isfinite(bounds[1]) else 1e6
    return [[low] * 3, [high] * 3, [low, high], [high] * 15 + [low], [low] * 15 + [high]]


def _all_metrics():
    sample = [(n, METRICS.get(n).bounds, METRICS.get(n).binary) for n in METRICS.names()]
    derived = [(n, DERIVED_METRICS.get(n).bounds, False) for n in DERIVED_METRICS.names()]
    return sample + derived


@pytest.mark.parametrize(("name", "bounds", "binary"), _all_metrics())
def test_no_interval_of_any_registered_metric_leaves_its_range(name, bounds, binary):
    low, high = bounds
    assert low < high, f"{name} declares no proper range"
    column = f"set/{name}" if name in METRICS else name
    assert range_info(column) is not None  # the leaderboard finds the declaration
    for values in _extremes(bounds, binary):
        for found in (iv.item_interval(values, bounds, binary), iv.seed_interval(values, bounds)):
            assert found is not None
            (ci_low, ci_high), _ = found
            assert low <= ci_low <= ci_high <= high, (name, values, found)


def _record(root: Path, seed: int, flagged: int, rouge: list[float], fq: float) -> None:
    """A finished run with 16 stored samples: ``flagged`` not-meaningful, the given ROUGEs."""
    run = root / f"g{seed}" / "ga"
    (run / "samples").mkdir(parents=True)
    header = {
        "run_id": f"g{seed}/ga", "status": "finished", "created": f"2025-01-0{seed + 1}",
        "label": "ga", "role": "unlearned", "seed": seed,
        "task": {"name": "t", "version": 1, "fingerprint": "x"},
        "method": {"method": "grad_ascent", "lr": 1e-5, "epochs": 1.0, "batch_size": 2},
        "config": {"model": "m"},
    }  # fmt: skip
    nm = [1.0] * flagged + [0.0] * (16 - flagged)
    samples = [
        {"eval_set": "unseen", "scores": {"not_meaningful": a, "continuation_rouge_l": b}}
        for a, b in zip(nm, rouge, strict=True)
    ]
    mean_nm, mean_rouge = flagged / 16, sum(rouge) / 16
    sd = math.sqrt(sum((v - mean_nm) ** 2 for v in nm) / 15) / 4
    results = {"t": {
        "unseen/not_meaningful": {"value": mean_nm, "stderr": sd, "n": 16,
                                  "higher_is_better": False, "version": 2},
        "unseen/continuation_rouge_l": {"value": mean_rouge, "stderr": 0.0, "n": 16,
                                        "higher_is_better": False, "version": 1},
        "forget_quality": {"value": fq, "stderr": None, "n": None, "higher_is_better": True,
                           "version": 2},
    }}  # fmt: skip
    (run / "header.json").write_text(json.dumps(header))
    (run / "results.json").write_text(json.dumps(results))
    (run / "samples" / "t.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def test_leaderboard_cells_from_stored_item_scores_stay_in_range(tmp_path):
    # 3 of 16 flagged: the old Student-t interval was 0.1875 -+ 2.131 x 0.1008 = [-0.027, 0.40].
    _record(tmp_path, 0, 3, [0.0] * 16, 0.5)
    (row,) = rows_from_records(find_runs(tmp_path))
    nm = row.metrics["unseen/not_meaningful"]
    assert nm.ci == pytest.approx(_score_test_roots(3, 16))
    assert nm.ci_method == iv.WILSON
    rouge = row.metrics["unseen/continuation_rouge_l"]
    assert rouge.ci == (0.0, 0.0)  # every item 0: the mean cannot be anything else
    assert "percentile bootstrap" in rouge.ci_method
    assert row.metrics["forget_quality"].ci is None  # one run's p-value: no interval


def test_leaderboard_summarises_p_values_over_seeds_by_the_median(tmp_path):
    for seed, fq in enumerate([0.9, 0.001, 0.02]):
        _record(tmp_path, seed, seed, [0.1 * seed] * 16, fq)
    (row,) = rows_from_records(find_runs(tmp_path))
    fq = row.metrics["forget_quality"]
    assert (fq.value, fq.stderr, fq.ci, fq.n) == (0.02, None, None, 3)
    assert "0.9, 0.001, 0.02" in fq.note
    # The shares 0, 1/16, 2/16 over seeds: a bootstrap over seeds stays within [0, 2/16].
    share = row.metrics["unseen/not_meaningful"]
    assert share.value == pytest.approx(1 / 16)
    assert 0.0 <= share.ci[0] <= share.ci[1] <= 2 / 16
