"""Likelihood-based TOFU metrics over stored per-token log-probabilities.

Every function here is pure: it takes what a run stored per sample (natural-log probabilities of
the ANSWER tokens only, given the question, or per-token argmax/label matches) and returns a
float. Definitions follow TOFU (Maini et al. 2024, arXiv 2401.06121) unless a
docstring says otherwise; SPEC.md section "TOFU" is the project's reading of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def logprob_array(token_logprobs: Sequence[float], name: str = "token_logprobs") -> NDArray:
    """Validate one answer's per-token log-probabilities and return them as a float array.

    Raises ValueError on an empty sequence (a metric over zero tokens is undefined, and silently
    returning 0 or NaN would hide a tokenisation bug) or on NaN. ``-inf`` (probability 0) is
    allowed: it is a legitimate, if extreme, model output.
    """
    arr = np.asarray(token_logprobs, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of per-token log-probabilities")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no answer tokens were scored")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def exp_or_inf(x: float) -> float:
    """exp(x), with +inf where the true value exceeds the largest float (about e^709.78).

    ``math.exp`` raises OverflowError there; the value is finite but unrepresentable, and
    every use here (a ratio fed to min(R, 1/R), max(0, 1 - R) or a rank test) has its correct
    limit at +inf. Below about e^-745 the result rounds to 0.0, also the right limit.
    """
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _mean_logprob(token_logprobs: Sequence[float], name: str = "token_logprobs") -> float:
    """Mean token log-probability, i.e. log of the length-normalised probability."""
    return float(np.mean(logprob_array(token_logprobs, name)))


def _perturbed_mean_logprobs(perturbed_logprobs: Sequence[Sequence[float]]) -> NDArray:
    """Per perturbed answer, its mean token log-probability (log P(a'|q)^(1/|a'|))."""
    if len(perturbed_logprobs) == 0:
        raise ValueError("perturbed_logprobs is empty: need at least one perturbed answer")
    return np.array(
        [_mean_logprob(lp, f"perturbed_logprobs[{i}]") for i, lp in enumerate(perturbed_logprobs)]
    )


def length_normalised_probability(token_logprobs: Sequence[float]) -> float:
    """TOFU "Probability": P(a|q)^(1/|a|) = exp(mean token log-probability over answer tokens).

    Length normalisation (the geometric mean of token probabilities) keeps long answers
    comparable with short ones (TOFU). Empty input raises ValueError.
    """
    return math.exp(_mean_logprob(token_logprobs))


def normalised_probability(
    answer_logprobs: Sequence[float], perturbed_logprobs: Sequence[Sequence[float]]
) -> float:
    """TOFU "Probability" on real authors / world facts: P(a|q) / (P(a|q) + sum_a' P(a'|q)).

    Each P is length-normalised (P^(1/|a|)) as in TOFU, so the value is the share of
    probability mass the correct answer gets among the answer options. Unlike open-unlearning's
    code we add no 1e-10 to the denominator: it is positive whenever any option has non-zero
    probability, and if all are 0 the result is undefined (ValueError) rather than silently 0.
    """
    p_answer = length_normalised_probability(answer_logprobs)
    p_perturbed = np.exp(_perturbed_mean_logprobs(perturbed_logprobs))
    denominator = p_answer + float(p_perturbed.sum())
    if denominator == 0.0:
        raise ValueError("every answer option has probability 0; normalised probability undefined")
    return p_answer / denominator


def truth_ratio(
    paraphrased_logprobs: Sequence[float], perturbed_logprobs: Sequence[Sequence[float]]
) -> float:
    """Raw TOFU truth ratio R = GM_{a'}(P(a'|q)^(1/|a'|)) / P(a~|q)^(1/|a~|).

    a~ is the paraphrased answer (forget/retain) or the answer itself (real authors, world
    facts); a' ranges over the perturbed (wrong) answers. The numerator is the geometric mean of
    the length-normalised perturbed probabilities, as SPEC.md prescribes and as the TOFU and
    open-unlearning code compute it (they average per-answer mean log-probs, then exponentiate).
    Computed in log space, log R = mean_a'(mean log p(a')) - mean log p(a~), so tiny sequence
    probabilities never underflow. R < 1 means the model prefers the true answer.

    A model far from the data (a diverged unlearning run gives per-token NLLs in the thousands)
    can put log R beyond float range: R is then +inf or 0.0, the correct limits of both
    scores below, rather than an OverflowError. Only 0/0 (both sides of probability 0) is
    undefined and raises ValueError.
    """
    log_perturbed = float(np.mean(_perturbed_mean_logprobs(perturbed_logprobs)))
    log_answer = _mean_logprob(paraphrased_logprobs, "paraphrased_logprobs")
    if math.isinf(log_perturbed) and math.isinf(log_answer) and log_perturbed == log_answer:
        raise ValueError("truth ratio undefined: true and perturbed answers all have probability 0")
    return exp_or_inf(log_perturbed - log_answer)


def _check_ratio(r: float) -> None:
    # 0 and +inf are the ratio's limits when one side's probability underflows; both have
    # well-defined scores (min(R, 1/R) -> 0; max(0, 1 - R) -> 1 or 0).
    if math.isnan(r) or r < 0.0:
        raise ValueError(f"truth ratio must be non-negative, got {r}")


def truth_ratio_forget_score(r: float) -> float:
    """Per-item truth-ratio score on the FORGET set: min(R, 1/R) (TOFU).

    1 means true and wrong answers are equally likely (nothing left to distinguish them), which
    is what a model never trained on the item shows; lower means it still prefers one side.
    """
    _check_ratio(r)
    if r == 0.0 or math.isinf(r):
        return 0.0  # the limit of min(R, 1/R) at either end
    return min(r, 1.0 / r)


def truth_ratio_retain_score(r: float) -> float:
    """Per-item truth-ratio score on retain / real authors / world facts: max(0, 1 - R).

    Higher is better: the model should prefer the true answer there (TOFU).
    """
    _check_ratio(r)
    return max(0.0, 1.0 - r)


def truth_ratio_correct_share(
    correct_logprobs: Sequence[float], perturbed_logprobs: Sequence[Sequence[float]]
) -> float:
    """Named variant "correct/(correct+wrong)" of the truth ratio: Pc / (Pc + Pw).

    Pc = length-normalised probability of the correct (paraphrased) answer, Pw = geometric mean
    of the length-normalised perturbed probabilities (the truth ratio's numerator). It equals
    1 / (1 + R), bounded in (0, 1). SPEC.md keeps it as a named variant of the later
    open-unlearning code; it is never the default TOFU truth ratio.
    """
    log_pc = _mean_logprob(correct_logprobs, "correct_logprobs")
    log_pw = float(np.mean(_perturbed_mean_logprobs(perturbed_logprobs)))
    if math.isinf(log_pw) and math.isinf(log_pc) and log_pw == log_pc:
        raise ValueError("correct share undefined: every answer has probability 0")
    # Pc/(Pc+Pw) = 1/(1+exp(log_pw - log_pc)); this form cannot underflow to 0/0, and an
    # exponent beyond float range gives 1/(1+inf) = 0, the correct limit.
    return 1.0 / (1.0 + exp_or_inf(log_pw - log_pc))


def _bool_array(argmax_matches: Sequence[bool]) -> NDArray:
    arr = np.asarray(argmax_matches, dtype=bool)
    if arr.ndim != 1:
        raise ValueError("argmax_matches must be a flat sequence of booleans")
    if arr.size == 0:
        raise ValueError("argmax_matches is empty: no answer tokens were scored")
    return arr


def exact_memorisation(argmax_matches: Sequence[bool]) -> float:
    """Exact memorisation (teacher forced): share of answer tokens whose argmax equals the label.

    Tirumala et al. 2022 (EM), as used by open-unlearning for TOFU. ``argmax_matches[i]`` is
    whether the model's argmax prediction at answer position i equals the label token there.
    """
    return float(np.mean(_bool_array(argmax_matches)))


def extraction_strength(argmax_matches: Sequence[bool]) -> float:
    """Return extraction strength (teacher forced), ES = 1 - k*/|a|.

    k* is the smallest k such that the argmax predictions equal the labels at every position
    from k to the end (Wang et al. 2025, "Towards Effective Evaluations and Comparisons for LLM
    Unlearning Methods", ICLR; as used by open-unlearning for TOFU). All tokens
    matching gives k* = 0 and ES = 1; a mismatching last token gives k* = |a| and ES = 0.
    Deliberate deviation: open-unlearning's loop stops at k = |a| - 1 when no suffix matches,
    so its code returns 1/|a| there; we follow the definition and return 0.
    """
    arr = _bool_array(argmax_matches)
    mismatches = np.flatnonzero(~arr)
    # k* is one past the last mismatch (0 when there is none).
    k_star = int(mismatches[-1]) + 1 if mismatches.size else 0
    return 1.0 - k_star / arr.size
