"""Metric registries.

A *sample metric* is a pure function of one stored sample (its record and the observations the
backend produced for it: token log-probs, greedy flags, generated text); its aggregate over an
eval set is separate. A *derived metric* is computed from a run's aggregated results and stored
samples, and possibly a reference run's, by name. Neither ever runs a model, so a finished run
can be re-scored without a forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearn_bench.registry import Registry

# Observations an evaluation can ask the backend for, per sample:
#   "answer", "paraphrased_answer": token scores of that field given the question
#   "perturbed_answer": a list of token scores, one per perturbed answer
#   "generation": the greedy completion of the question
#   "answer_vocab_stats": per-position mean/std of log p over the full vocabulary (HF only)
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
    aggregate: str = "mean"  # the only aggregate so far; stderr is over samples
    capabilities: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DerivedResult:
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class DerivedMetric:
    """A run-level metric over aggregated results (and samples) of this and a reference run."""

    name: str
    version: int
    fn: Callable[[Any, Any], DerivedResult]  # (this RunView, reference RunView | None)
    higher_is_better: bool | None
    description: str
    needs_reference: bool = False


METRICS: Registry[SampleMetric] = Registry("metric")
DERIVED_METRICS: Registry[DerivedMetric] = Registry("derived metric")


def sample_metric(
    name: str,
    *,
    version: int,
    needs: Sequence[str],
    higher_is_better: bool | None,
    capabilities: Sequence[str] = ("logprobs",),
) -> Callable[[Callable[[Sample], float]], Callable[[Sample], float]]:
    """Register the decorated per-sample function; its docstring is the metric's description."""

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
            )
        )
        return fn

    return decorator


def derived_metric(
    name: str, *, version: int, higher_is_better: bool | None, needs_reference: bool = False
) -> Callable[[Callable[[Any, Any], DerivedResult]], Callable[[Any, Any], DerivedResult]]:
    def decorator(fn: Callable[[Any, Any], DerivedResult]) -> Callable[[Any, Any], DerivedResult]:
        DERIVED_METRICS.register(name)(
            DerivedMetric(
                name=name,
                version=version,
                fn=fn,
                higher_is_better=higher_is_better,
                description=(fn.__doc__ or "").strip().splitlines()[0],
                needs_reference=needs_reference,
            )
        )
        return fn

    return decorator


# Importing the definitions registers them; they are light (numpy, scipy, rouge-score).
_TOFU = "unlearn_bench.metrics.tofu"
for _name in (
    "probability",
    "normalised_probability",
    "rouge_l_recall",
    "truth_ratio_forget",
    "truth_ratio",
    "truth_ratio_correct_share",
    "exact_memorisation",
    "extraction_strength",
):
    METRICS.register_lazy(_name, f"{_TOFU}:registered")
for _name in ("forget_quality", "retain_utility", "model_utility"):
    DERIVED_METRICS.register_lazy(_name, f"{_TOFU}:registered")
