"""Aggregations and derived statistics: forget quality, model utility, PrivLeak, mean +- stderr.

Pure functions over per-item values that metrics in ``likelihood``, ``text`` and ``mia`` already
produced; they never touch a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

#: The nine inputs of TOFU's model utility: {probability, ROUGE, truth ratio} on {retain set,
#: real authors, world facts} (Maini et al. 2024).
MODEL_UTILITY_KEYS: frozenset[str] = frozenset(
    f"{split}_{metric}"
    for split in ("retain", "real_authors", "world_facts")
    for metric in ("probability", "rouge", "truth_ratio")
)


def _finite_array(values: Sequence[float], name: str, allow_inf: bool = False) -> NDArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any() or (not allow_inf and np.isinf(arr).any()):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def forget_quality(
    unlearned_truth_ratios: Sequence[float], retain_truth_ratios: Sequence[float]
) -> float:
    """TOFU forget quality: p-value of the two-sample Kolmogorov-Smirnov test (Maini et al. 2024).

    Compares the per-item raw truth ratios R on the forget set of the unlearned model with those
    of the retain (never-trained-on-forget) model, using ``scipy.stats.ks_2samp`` with its
    defaults (two-sided, exact p-value for small samples). High p (up to 1.0 for identical
    samples) means the two distributions cannot be told apart. The KS statistic depends only on
    the ranks of the pooled sample, so it is invariant to the strictly monotone map R -> 1/R:
    TOFU's code, which feeds the inverse ratio P(a~)/GM P(a'), gives the same p-value.
    """
    from scipy.stats import ks_2samp

    # An infinite ratio (a paraphrased answer with probability 0) still has a rank, so KS copes.
    unlearned = _finite_array(unlearned_truth_ratios, "unlearned_truth_ratios", allow_inf=True)
    retain = _finite_array(retain_truth_ratios, "retain_truth_ratios", allow_inf=True)
    return float(ks_2samp(unlearned, retain).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean n / sum(1/x_i) of non-negative numbers, defined as 0 if any x_i is 0.

    The limit as any x_i -> 0 is 0, which is what TOFU's model utility needs: one collapsed
    component must drag utility to 0, not raise a division error. Negative values have no
    meaning for these metrics and raise ValueError; so does empty input.
    """
    arr = _finite_array(values, "values")
    if (arr < 0).any():
        raise ValueError(f"harmonic mean needs non-negative values, got {arr.tolist()}")
    if (arr == 0).any():
        return 0.0
    return float(arr.size / np.sum(1.0 / arr))


def model_utility(values: Mapping[str, float]) -> float:
    """TOFU model utility: harmonic mean of exactly nine numbers (Maini et al. 2024).

    Keys are ``{retain,real_authors,world_facts}_{probability,rouge,truth_ratio}``. A missing
    or unexpected key raises ValueError naming it: computing over fewer numbers would silently
    give a different, incomparable metric.
    """
    missing = sorted(MODEL_UTILITY_KEYS - values.keys())
    if missing:
        raise ValueError(f"model utility is missing {', '.join(missing)}")
    extra = sorted(set(values.keys()) - MODEL_UTILITY_KEYS)
    if extra:
        raise ValueError(f"model utility got unexpected {', '.join(extra)}")
    return harmonic_mean([values[key] for key in sorted(MODEL_UTILITY_KEYS)])


def privleak(auc_unlearned: float, auc_retain: float) -> float:
    """MUSE PrivLeak = (AUC_unlearned - AUC_retain) / AUC_retain x 100 (Shi et al. 2024).

    Both AUCs must follow MUSE's convention (see ``unlearn_bench.metrics.mia.mia_auc``), where a
    model that memorised the forget set scores AUC near 0: then about 0 is ideal, strongly
    negative is under-unlearning (the target scores about -100) and strongly positive is
    over-unlearning. MUSE's own table uses a fixed retrain AUC (News, Min-40%: 0.4772).
    """
    for name, auc in (("auc_unlearned", auc_unlearned), ("auc_retain", auc_retain)):
        if not 0.0 <= auc <= 1.0:
            raise ValueError(f"{name} must be an AUC in [0, 1], got {auc}")
    if auc_retain == 0.0:
        raise ValueError("auc_retain is 0: PrivLeak is undefined")
    return (auc_unlearned - auc_retain) / auc_retain * 100.0


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean, sample std (ddof=1) / sqrt(n).

    With one value the sample std is undefined, so stderr is NaN rather than a misleading 0.
    """
    arr = _finite_array(values, "values")
    mean = float(np.mean(arr))
    if arr.size == 1:
        return mean, math.nan
    return mean, float(np.std(arr, ddof=1) / math.sqrt(arr.size))
