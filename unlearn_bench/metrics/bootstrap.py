"""Percentile bootstrap confidence intervals (Efron & Tibshirani 1993, ch. 13), seeded.

MUSE reports its ROUGE aggregates with ``scipy.stats.bootstrap(..., confidence_level=0.95,
method="percentile")`` (Shi et al. 2024, released code). We compute the same percentile interval
ourselves with numpy so that (a) the seed makes every interval reproducible run to run, (b) one
routine also serves two-sample statistics such as PrivLeak's AUC, where each sample (forget,
holdout, and the reference run's) is resampled independently, and (c) a constant sample gives
the degenerate interval [c, c] instead of scipy's warning.

Interval: the (1 - level)/2 and (1 + level)/2 quantiles (numpy's default linear interpolation,
as scipy's percentile method) of the statistic over ``n_resamples`` resamples drawn with
replacement, each the size of its original sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

#: Defaults used by every interval the harness stores (recorded next to each interval).
N_RESAMPLES = 2000
LEVEL = 0.95
SEED = 0


def _check(level: float, n_resamples: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def _interval(distribution: NDArray, level: float) -> tuple[float, float]:
    low, high = np.quantile(distribution, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    statistic: Callable[..., NDArray],
    samples: Sequence[Sequence[float]],
    *,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile interval of a statistic of one or more samples, each resampled independently.

    Vectorised: ``statistic`` receives one 2-D array per sample, shape (n_resamples, sample
    size), one resample per row, and returns the n_resamples statistics. Independent
    resampling is right when the samples are independent draws (PrivLeak's forget and holdout
    texts).
    """
    _check(level, n_resamples)
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    if not arrays or any(a.ndim != 1 or a.size == 0 or np.isnan(a).any() for a in arrays):
        raise ValueError("bootstrap needs non-empty flat samples of numbers without NaN")
    rng = np.random.default_rng(seed)
    resampled = [a[rng.integers(0, a.size, size=(n_resamples, a.size))] for a in arrays]
    draws = np.asarray(statistic(*resampled), dtype=np.float64)
    if draws.shape != (n_resamples,) or np.isnan(draws).any():
        raise ValueError("the statistic must return one number per resample, none NaN")
    return _interval(draws, level)


def bootstrap_mean_ci(
    values: Sequence[float],
    *,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    return bootstrap_ci(
        lambda a: a.mean(axis=1), [values], level=level, n_resamples=n_resamples, seed=seed
    )


def describe(level: float = LEVEL, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> str:
    """How an interval was computed, stored next to it in results."""
    return f"percentile bootstrap, {level:.0%}, {n_resamples} resamples, seed {seed}"
