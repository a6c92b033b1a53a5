"""Which interval a leaderboard cell gets, from its metric's declared range (metrics.intervals).

A column ``set/name`` is a sample metric, a column ``name`` a derived one; either is looked up
in its registry for the range and kind its definition declares. Intervals are computed from
the run's stored per-item scores when its result entry has none (records written before
results carried intervals), so regenerating a table from old records also corrects it. A
column whose metric is not registered (lm-eval tasks, probe summaries) declares no range and
gets no computed interval. Whatever is kept or computed is checked against the range before it
reaches a cell, so no printed interval can leave it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unlearn_bench.metrics import DERIVED_METRICS, METRICS
from unlearn_bench.metrics import intervals as iv

Interval = tuple[float, float]


@dataclass(frozen=True)
class RangeInfo:
    """What a column's metric declares: its range, 0/1 items, p-value."""

    bounds: tuple[float, float]
    binary: bool = False
    p_value: bool = False


def metric_name(column: str) -> str:
    """The registered metric name of a column key (eval-set prefix and ``@vN`` dropped)."""
    return column.split("@v")[0].rsplit("/", 1)[-1]


def range_info(column: str) -> RangeInfo | None:
    """The declaration of the column's metric, or None when it is not a registered metric."""
    name = metric_name(column)
    if "/" in column:
        if name not in METRICS:
            return None
        sample = METRICS.get(name)
        return RangeInfo(sample.bounds, binary=sample.binary)
    if name not in DERIVED_METRICS:
        return None
    derived = DERIVED_METRICS.get(name)
    return RangeInfo(derived.bounds, p_value=derived.p_value)


def item_scores(samples: list[dict[str, Any]], column: str) -> list[float]:
    """The defined per-item scores of a ``set/metric`` column in a run's stored samples."""
    eval_set, name = column.split("@v")[0].split("/", 1)[0], metric_name(column)
    values = [
        float(s["scores"][name])
        for s in samples
        if s.get("eval_set") == eval_set and name in (s.get("scores") or {})
    ]
    return [v for v in values if not math.isnan(v)]  # NaN: undefined, left out of the mean


def run_interval(
    info: RangeInfo | None,
    column: str,
    stored: Interval | None,
    n: int | None,
    samples: Callable[[], list[dict[str, Any]]],
) -> tuple[Interval | None, str]:
    """One run's interval for a cell and its method ("" when there is none, or a reason)."""
    if info is None:
        return stored, ""  # no declared range: only the producer's own interval, if any
    if stored is not None:
        try:
            return iv.check_within(stored, info.bounds), ""
        except ValueError as exc:
            return None, f"stored interval dropped: {exc}"
    if "/" not in column:
        return None, ""  # a derived value carries its interval in its entry or has none
    values = item_scores(samples(), column)
    if not values:
        return None, ""
    if n is not None and len(values) != n:
        return None, f"no interval: {len(values)} stored item scores but n={n}"
    try:
        found = iv.item_interval(values, info.bounds, info.binary)
    except ValueError as exc:
        return None, f"no interval: {exc}"
    return (None, "") if found is None else found


def seed_summary(
    info: RangeInfo | None, values: list[float]
) -> tuple[float, float | None, Interval | None, str, str]:
    """(value, stderr, interval, method, note) of one metric over a row's seeds."""
    if info is not None and info.p_value:
        value, note = iv.median_p_value(values)
        return value, None, None, iv.MEDIAN_P, note
    mean = sum(values) / len(values)
    stderr = None
    if len(values) > 1:
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        stderr = math.sqrt(var) / math.sqrt(len(values))
    found = None
    if info is not None:
        try:
            found = iv.seed_interval(values, info.bounds)
        except ValueError as exc:
            return mean, stderr, None, "", f"no interval: {exc}"
    ci, method = found if found is not None else (None, "")
    return mean, stderr, ci, method, ""
