"""Expected values worked out in the tests from stored samples, independent of the metric code."""

from __future__ import annotations

from typing import Any


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def log_truth_ratio(sample: dict[str, Any]) -> float:
    """log R = mean over perturbed answers of their mean token log-prob - that of a~ (TOFU)."""
    obs = sample["obs"]
    perturbed = _mean([_mean(p["logprobs"]) for p in obs["perturbed_answer"]])
    return perturbed - _mean(obs["paraphrased_answer"]["logprobs"])


def forget_quality(unlearned: list[dict[str, Any]], retain: list[dict[str, Any]]) -> float:
    """TOFU forget quality from two runs' forget samples: scipy's two-sample KS p-value.

    KS depends only on ranks, so log R (monotone in R) gives the same p-value as R.
    """
    from scipy.stats import ks_2samp

    def ratios(samples: list[dict[str, Any]]) -> list[float]:
        forget = sorted((s for s in samples if s["eval_set"] == "forget"), key=lambda s: s["index"])
        return [log_truth_ratio(s) for s in forget]

    mine, theirs = ratios(unlearned), ratios(retain)
    assert len(mine) == len(theirs) > 1
    return float(ks_2samp(mine, theirs).pvalue)
