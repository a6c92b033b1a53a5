"""95% intervals that cannot leave a metric's declared range, and the seed summary of p-values.

Every registered metric declares the range its values lie in (``bounds`` at its definition).
A Student-t interval, value +- t x stderr, ignores that range: on a share of 16 items of which
3 are flagged it gives [-0.027, 0.40]. The intervals here respect the range by construction:

- a share of 0/1 items (``binary`` metrics): the Wilson score interval (Wilson 1927; recommended
  over the Wald interval by Brown, Cai & DasGupta 2001, "Interval Estimation for a Binomial
  Proportion"), which always lies in [0, 1] and is not degenerate at 0 or n successes;
- any other per-item mean: the seeded percentile bootstrap of the mean (``metrics.bootstrap``,
  Efron & Tibshirani 1993), whose ends are means of resampled items and so lie between the
  smallest and the largest item, hence inside the range;
- a run-level value averaged over a few seeds: the same percentile bootstrap over the seeds'
  values (coarse with so few seeds, but never outside [min, max] of them);
- a p-value (forget quality) over seeds: no mean and no interval. The plain mean of p-values
  is not a p-value (only twice the mean is valid in general: Rüschendorf 1982, Meng 1993; see
  Vovk & Wang 2020, "Combining p-values via averaging", Biometrika 107) and a t-interval around
  it leaves [0, 1]. We report the median with every seed's value in the note: twice the median
  is a valid p-value under any dependence between the seeds (Rüger 1978's order-statistic rule;
  see Gasparin, Wang & Ramdas 2024, "Combining exchangeable p-values"), so the median is within
  a factor of two of a valid combined test, and, unlike the mean, it commutes with the log
  scale forget quality is usually read on.

Every function ends in ``check_within``, so an interval outside the range raises instead of
being printed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median

from unlearn_bench.metrics import bootstrap

#: Two-sided 95% standard-normal quantile, Phi^-1(0.975).
Z95 = 1.959963984540054
#: Per-item values this far outside the declared range are float noise (a cosine of 1 + 1e-7),
#: clipped to the bound; anything further is a bug in the metric and raises.
TOLERANCE = 1e-6

WILSON = "Wilson score 95% (share of 0/1 items)"
SEED_BOOTSTRAP = "percentile bootstrap over seeds, 95%, {n} resamples, seed {seed}"
MEDIAN_P = "median p-value over seeds (no interval; per-seed values in the note)"

Bounds = tuple[float, float]


def check_within(ci: tuple[float, float], bounds: Bounds) -> tuple[float, float]:
    """``ci`` itself when low <= high and both lie in ``bounds``; else ValueError."""
    low, high = ci
    if not (bounds[0] <= low <= high <= bounds[1]):
        raise ValueError(f"interval [{low}, {high}] leaves the metric's range {list(bounds)}")
    return ci


def in_range(values: Sequence[float], bounds: Bounds) -> list[float]:
    """``values`` with float noise at the ends clipped to ``bounds``; ValueError beyond that."""
    slack = TOLERANCE * max([1.0, *(abs(b) for b in bounds if math.isfinite(b))])
    out = []
    for value in values:
        if math.isnan(value) or not bounds[0] - slack <= value <= bounds[1] + slack:
            raise ValueError(f"value {value} lies outside the metric's range {list(bounds)}")
        out.append(min(max(value, bounds[0]), bounds[1]))
    return out


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (Wilson 1927).

    centre = (p + z^2/2n) / (1 + z^2/n), half-width = z / (1 + z^2/n) x
    sqrt(p(1-p)/n + z^2/4n^2). Mathematically inside [0, 1]; the ends are clipped there only
    to absorb rounding (at k = 0 the lower end is 0 - 1e-17).
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"Wilson interval needs 0 <= k <= n and n >= 1, got k={successes}, n={n}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n))
    return check_within((max(0.0, centre - half), min(1.0, centre + half)), (0.0, 1.0))


def item_interval(
    values: Sequence[float], bounds: Bounds, binary: bool
) -> tuple[tuple[float, float], str] | None:
    """The 95% interval of the mean of per-item ``values`` and how it was computed.

    None with fewer than two items: one item gives no spread to build an interval from.
    """
    if len(values) < 2:
        return None
    clean = in_range(values, bounds)
    if binary:
        if any(v not in (0.0, 1.0) for v in clean):
            raise ValueError("a binary metric produced a value other than 0 or 1")
        return wilson(int(sum(clean)), len(clean)), WILSON
    ci = bootstrap.bootstrap_mean_ci(clean)
    return check_within(ci, bounds), bootstrap.describe()


def seed_interval(
    values: Sequence[float], bounds: Bounds
) -> tuple[tuple[float, float], str] | None:
    """Percentile bootstrap interval of the mean over seeds' values (None under two seeds)."""
    if len(values) < 2:
        return None
    ci = bootstrap.bootstrap_mean_ci(in_range(values, bounds))
    method = SEED_BOOTSTRAP.format(n=bootstrap.N_RESAMPLES, seed=bootstrap.SEED)
    return check_within(ci, bounds), method


def median_p_value(values: Sequence[float]) -> tuple[float, str]:
    """The median of per-seed p-values and a note listing each seed's value."""
    if not values:
        raise ValueError("no p-values to summarise")
    clean = in_range(values, (0.0, 1.0))
    listed = ", ".join(f"{v:.3g}" for v in clean)
    return float(median(clean)), f"median of {len(clean)} seeds' p-values ({listed})"
