"""Golden tests for MUSE's metrics: every expected value is worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearn_bench.evaluate import parse_task, score_samples
from unlearn_bench.metrics import DERIVED_METRICS, METRICS
from unlearn_bench.metrics.bootstrap import bootstrap_ci, bootstrap_mean_ci
from unlearn_bench.metrics.mia import mia_auc
from unlearn_bench.metrics.muse import MUSE_NEWS_RETRAIN_AUC, muse_auc_rows, muse_rouge_l_f1
from unlearn_bench.metrics.views import RunView
from unlearn_bench.tasks import find_task


def _gen(generation: str, answer: str = "", prefix: str | None = None) -> dict:
    obs = {"generation": generation}
    if prefix is not None:
        obs["reference_prefix"] = prefix
    return {"question": "q", "answer": answer, "obs": obs}


def test_rouge_l_f1_by_hand():
    # pred: the cat sat on the mat (6), ref: the cat lay on the mat (6); LCS = the cat on the
    # mat = 5 -> P = R = 5/6 -> F1 = 5/6
    assert muse_rouge_l_f1("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(
        5 / 6
    )
    # no common token -> 0; an empty prediction -> 0
    assert muse_rouge_l_f1("dogs bark", "cats purr") == 0.0
    assert muse_rouge_l_f1("", "cats purr") == 0.0


def test_muse_rouge_does_not_stem():
    # MUSE's scorer has use_stemmer=False: "running dogs" vs "run dog" share no token -> 0.
    # (With the Porter stemmer both would read "run dog" -> 1.)
    assert muse_rouge_l_f1("running dogs", "run dog") == 0.0
    verbmem = METRICS.get("verbmem_f").fn
    assert verbmem(_gen("running dogs", prefix="run dog")) == 0.0


def test_verbmem_compares_with_the_reference_prefix_not_the_full_answer():
    verbmem = METRICS.get("verbmem_f").fn
    # generation "police said the fire" vs prefix "police said the": LCS 3, P = 3/4, R = 3/3
    # -> F1 = 2 * 0.75 * 1 / 1.75 = 6/7 -> x100 = 85.714...
    sample = _gen(
        "police said the fire", answer="police said the blaze was out", prefix="police said the"
    )
    assert verbmem(sample) == pytest.approx(600 / 7)


def test_knowmem_scores_by_hand():
    knowmem_f, knowmem_r = METRICS.get("knowmem_f"), METRICS.get("knowmem_r")
    assert knowmem_f.fn(_gen("1472", "1472")) == pytest.approx(100.0)
    # "in 1472" vs "1472": LCS 1, P = 1/2, R = 1 -> F1 = 2/3 -> 66.666...
    assert knowmem_r.fn(_gen("in 1472", "1472")) == pytest.approx(200 / 3)
    assert knowmem_f.higher_is_better is False and knowmem_r.higher_is_better is True


def test_aggregate_is_the_mean_x100_with_a_bootstrap_interval():
    spec = parse_task(find_task("muse_news"))
    samples = {
        "knowmem_forget": [
            _gen("1472", "1472"),  # 100
            _gen("in 1472", "1472"),  # 66.666...
            _gen("no idea", "1472"),  # 0
        ]
    }
    result = score_samples(spec, samples)["knowmem_forget/knowmem_f"]
    # mean = (100 + 66.666... + 0) / 3 = 55.555...
    assert result["value"] == pytest.approx(500 / 9)
    assert result["n"] == 3
    low, high = result["ci"]
    assert 0.0 <= low <= 500 / 9 <= high <= 100.0
    assert "percentile bootstrap" in result["ci_method"]


def test_min_k_40_by_hand():
    min_k = METRICS.get("min_k_40").fn
    # 5 tokens -> floor(5 * 0.4) = 2 lowest: -5, -4 -> mean -4.5
    sample = {"obs": {"answer": {"logprobs": [-1.0, -5.0, -2.0, -4.0, -3.0], "greedy": [True] * 5}}}
    assert min_k(sample) == pytest.approx(-4.5)


def _view(label: str, forget: list[float], holdout: list[float]) -> RunView:
    """A run whose texts are one token each, so a text's Min-40% score is that token's log-prob."""

    def samples(values: list[float]) -> list[dict]:
        return [{"obs": {"answer": {"logprobs": [v], "greedy": [True]}}} for v in values]

    by_set = {"privleak_forget": samples(forget), "privleak_holdout": samples(holdout)}
    return RunView(label, by_set, {})


def test_privleak_against_muses_constant_by_hand():
    # Member-ness forget [-1, -2], holdout [-3, -1.5]. MUSE's AUC counts the pairs where the
    # forget text looks LESS memorised (lower score): only (-2, -1.5) of the 4 -> 1/4.
    run = _view("run", [-1.0, -2.0], [-3.0, -1.5])
    auc = DERIVED_METRICS.get("privleak_auc").fn(run, None)
    assert auc.value == pytest.approx(0.25)
    leak = DERIVED_METRICS.get("privleak").fn(run, None)
    # (0.25 - 0.4772) / 0.4772 x 100 = -0.2272 / 0.4772 x 100 = -47.6110...
    assert leak.value == pytest.approx((0.25 - 0.4772) / 0.4772 * 100)
    assert leak.value == pytest.approx(-47.61106, abs=1e-4)
    assert "published" in leak.note and str(MUSE_NEWS_RETRAIN_AUC) in leak.note
    low, high = leak.extra["ci"]
    assert low <= leak.value <= high


def test_privleak_against_a_reference_run_by_hand():
    run = _view("run", [-1.0, -2.0], [-3.0, -1.5])  # AUC 1/4 (above)
    # reference forget [-3, -2.5] always below holdout [-1, -2]: all 4 pairs count -> AUC 1
    reference = _view("retrain", [-3.0, -2.5], [-1.0, -2.0])
    leak = DERIVED_METRICS.get("privleak").fn(run, reference)
    assert leak.value == pytest.approx((0.25 - 1.0) / 1.0 * 100)  # -75
    assert "reference run retrain" in leak.note
    # A run against itself is exactly 0.
    assert DERIVED_METRICS.get("privleak").fn(run, run).value == pytest.approx(0.0)


def test_vectorised_auc_equals_roc_auc_score_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        forget = rng.integers(0, 4, size=rng.integers(1, 7)).astype(float)
        holdout = rng.integers(0, 4, size=rng.integers(1, 7)).astype(float)
        assert muse_auc_rows(forget[None], holdout[None])[0] == pytest.approx(
            mia_auc(forget, holdout)
        )


def test_bootstrap_interval_properties():
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, size=100)
    low, high = bootstrap_mean_ci(values, seed=3)
    assert low < float(np.mean(values)) < high
    assert bootstrap_mean_ci(values, seed=3) == (low, high)  # seeded: reproducible
    assert bootstrap_mean_ci(values, seed=4) != (low, high)
    # Width of a mean's interval ~ 2 x 1.96 x sigma / sqrt(n) = 0.784 for sigma 2, n 100.
    assert 0.5 < high - low < 1.1
    # Four times the data: about half the width.
    big = rng.normal(10.0, 2.0, size=400)
    big_low, big_high = bootstrap_mean_ci(big)
    assert 0.35 < (big_high - big_low) / (high - low) < 0.7
    # A narrower level gives a nested interval; a constant sample a point.
    in_low, in_high = bootstrap_mean_ci(values, level=0.5, seed=3)
    assert low < in_low < in_high < high
    assert bootstrap_mean_ci([7.0] * 20) == (7.0, 7.0)


def test_bootstrap_coverage_is_near_nominal():
    # 200 normal samples of size 40 with true mean 0: a 90% interval should cover 0 in about
    # 90% of them (percentile intervals under-cover slightly at small n).
    rng = np.random.default_rng(2)
    covered = sum(
        low <= 0.0 <= high
        for low, high in (
            bootstrap_mean_ci(rng.normal(size=40), level=0.9, n_resamples=1000, seed=s)
            for s in range(200)
        )
    )
    assert 0.8 <= covered / 200 <= 0.97


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, math.nan])
    with pytest.raises(ValueError):
        bootstrap_ci(lambda a: a.mean(axis=1), [[1.0, 2.0]], level=1.5)
