"""Metric registries.

A *sample metric* is a pure function of one stored sample (its record and the observations the
backend produced for it: token log-probs, greedy flags, generated text); its aggregate over an
eval set is separate. A *derived metric* is computed from a run's aggregated results and stored
samples, and possibly a reference run's, by name. Neither ever runs a model, so a finished run
can be re-scored without a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearn_bench.metrics.views import RunView
from unlearn_bench.registry import Registry

# Observations an evaluation can ask the backend for, per sample:
#   "answer", "paraphrased_answer": token scores of that field given the question
#   "perturbed_answer": a list of token scores, one per perturbed answer
#   "generation": the greedy completion of the question
#   "answer_vocab_stats": per-position mean/std of log p over the full vocabulary (HF only)
#   "answer_grad_norm": norms of the gradient of the answer's mean NLL (HF only, "grad")
OBSERVATIONS = ("answer", "paraphrased_answer", "perturbed_answer", "generation")

Sample = dict[str, Any]


@dataclass(frozen=True)
class SampleMetric:
    """A per-sample score and how an eval set aggregates it."""

    name: str
    version: int
    fn: Callable[[Sample], float]
    needs: frozenset[str]
    higher_is_better: bool | None
    description: str
    # "mean" (stderr over samples) or "mean_defined": NaN samples (undefined, e.g. an output
    # that is not meaningful) are left out and counted in the result's note.
    aggregate: str = "mean"
    capabilities: frozenset[str] = field(default_factory=frozenset)
    # The range every per-sample value lies in (inclusive; +-inf for an open end). Intervals
    # are computed so that they cannot leave it (metrics.intervals).
    bounds: tuple[float, float] = (-math.inf, math.inf)
    # Every defined per-sample value is 0 or 1, so the aggregate is a share: Wilson interval.
    binary: bool = False


@dataclass(frozen=True)
class DerivedResult:
    """A derived metric's value (None: undefined), note and extra fields."""

    value: float | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # more result fields, e.g. "ci"


DerivedFn = Callable[[RunView, RunView | None], DerivedResult]


@dataclass(frozen=True)
class DerivedMetric:
    """A run-level metric over aggregated results (and samples) of this and a reference run."""

    name: str
    version: int
    fn: DerivedFn  # (this run, the reference run or None)
    higher_is_better: bool | None
    description: str
    needs_reference: bool = False
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the value's range, as SampleMetric's
    # The value is a p-value: across seeds it is summarised by the median (metrics.intervals).
    p_value: bool = False


METRICS: Registry[SampleMetric] = Registry("metric", indexed=True)
DERIVED_METRICS: Registry[DerivedMetric] = Registry("derived metric", indexed=True)


def needed_observations(metric_names: list[str]) -> set[str]:
    """The observations (and scorer slots) that the named sample metrics read."""
    needs: set[str] = set()
    for name in metric_names:
        needs |= METRICS.get(name).needs
    return needs


def check_bounds(name: str, bounds: tuple[float, float]) -> None:
    """A metric's declared range must be (low, high) with low < high and neither NaN."""
    low, high = bounds
    if not low < high:  # also false for NaN
        raise ValueError(f"metric {name!r}: bounds must be (low, high) with low < high")


def sample_metric(
    name: str,
    *,
    version: int,
    needs: Sequence[str],
    higher_is_better: bool | None,
    capabilities: Sequence[str] = ("logprobs",),
    bounds: tuple[float, float],
    binary: bool = False,
    aggregate: str = "mean",
) -> Callable[[Callable[[Sample], float]], Callable[[Sample], float]]:
    """Register the decorated per-sample function; its docstring is the metric's description.

    ``bounds`` (required: every metric declares its range) and ``binary`` decide how its
    interval is computed (``metrics.intervals``).
    """
    check_bounds(name, bounds)

    def decorator(fn: Callable[[Sample], float]) -> Callable[[Sample], float]:
        METRICS.register(name)(
            SampleMetric(
                name=name,
                version=version,
                fn=fn,
                needs=frozenset(needs),
                higher_is_better=higher_is_better,
                description=(fn.__doc__ or "").strip().splitlines()[0],
                capabilities=frozenset(capabilities),
                aggregate=aggregate,
                bounds=bounds,
                binary=binary,
            )
        )
        return fn

    return decorator


def derived_metric(
    name: str,
    *,
    version: int,
    higher_is_better: bool | None,
    bounds: tuple[float, float],
    needs_reference: bool = False,
    p_value: bool = False,
) -> Callable[[DerivedFn], DerivedFn]:
    """Register the decorated run-level function; its docstring is the metric's description."""
    check_bounds(name, bounds)

    def decorator(fn: DerivedFn) -> DerivedFn:
        DERIVED_METRICS.register(name)(
            DerivedMetric(
                name=name,
                version=version,
                fn=fn,
                higher_is_better=higher_is_better,
                description=(fn.__doc__ or "").strip().splitlines()[0],
                needs_reference=needs_reference,
                bounds=bounds,
                p_value=p_value,
            )
        )
        return fn

    return decorator
