"""MedForget's metrics (Wu et al. 2025, arXiv 2512.09867), per hierarchy level and sub-task.

- **Gen Score** (``gen_score``, generation questions) = 0.25 x ROUGE-L F1 + 0.75 x (judge
  factuality 1-10) / 10 per sample, mean over samples. A judge reply that fails the strict
  parser (``parse_factuality``) contributes factuality 0, as in the authors'
  ``eval.py``, and is counted by ``judge_failed`` / ``judge_failures``. (The authors' analysis
  script instead averages Gen Score over judged samples only; with no failures the two agree.)
- **Accuracy** (``exact_match_accuracy``, classification and cloze questions) = share of answers
  whose ROUGE-L F1 against the reference is exactly 1 (the authors' criterion).
- ``rouge_l_f1`` and ``judge_factuality`` report Gen Score's two parts; ``judge_factuality``
  leaves failed judgements out (``mean_defined``) as the authors' factuality mean does.

ROUGE-L F1 is rouge-score's with the Porter stemmer on, as MedForget's ``compute_rouge_l``.
Which set is "good" depends on the split (low on forget, high on retain), so these metrics carry
no fixed direction.
"""

from __future__ import annotations

import json
import math
from typing import Any

from unlearn_bench.metrics import DerivedResult, Sample, derived_metric, sample_metric
from unlearn_bench.metrics.text import rouge_l_f1 as _rouge_l_f1

_GEN = ("generate",)
_JUDGE = "scorer:factuality"
ROUGE_WEIGHT = 0.25
FACTUALITY_WEIGHT = 0.75


def _unfence(text: str) -> str:
    """The body of one enclosing Markdown code fence (```json ... ```), else the text itself."""
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        body = text[3:-3]
        return body[4:] if body.startswith("json") else body
    return text


def parse_factuality(reply: str) -> float | None:
    """The judge's 1-10 score, or None when the reply breaks the format.

    Strict: after stripping whitespace (and one enclosing code fence, which instruction models
    add habitually), the reply must be exactly one JSON object with the two keys ``score`` (a
    number from 1 to 10, not a boolean) and ``reasoning`` (a string). MedForget's own code falls
    back to a regular expression on malformed replies; we count them as failures instead.
    """
    try:
        data = json.loads(_unfence(reply.strip()).strip())
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict) or set(data) != {"score", "reasoning"}:
        return None
    score, reasoning = data["score"], data["reasoning"]
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not isinstance(reasoning, str)
    ):
        return None
    if math.isnan(score) or not 1 <= score <= 10:
        return None
    return float(score)


def gen_score_value(rouge_l_f1: float, factuality: float | None) -> float:
    """0.25 x ROUGE-L F1 + 0.75 x factuality / 10; a failed judgement (None) counts as 0."""
    if not 0.0 <= rouge_l_f1 <= 1.0:
        raise ValueError(f"ROUGE-L F1 must be in [0, 1], got {rouge_l_f1}")
    if factuality is not None and not 1.0 <= factuality <= 10.0:
        raise ValueError(f"factuality must be in [1, 10], got {factuality}")
    return ROUGE_WEIGHT * rouge_l_f1 + FACTUALITY_WEIGHT * (factuality or 0.0) / 10.0


def _factuality(sample: Sample) -> float | None:
    """The judge's score, re-parsed from its stored reply (the stored parse is a convenience)."""
    judged = sample["obs"][_JUDGE]
    if judged.get("kind") != "llm_factuality":
        raise ValueError(f"scorer:factuality holds a {judged.get('kind')!r} result")
    return parse_factuality(judged["reply"])


@sample_metric("rouge_l_f1", version=1, needs=["generation"], higher_is_better=None,
               bounds=(0.0, 1.0), capabilities=_GEN)  # fmt: skip
def rouge_l_f1(sample: Sample) -> float:
    """ROUGE-L F1 (stemmed) of the greedy answer against the reference answer."""
    return _rouge_l_f1(sample["obs"]["generation"], sample["answer"])


@sample_metric("exact_match_accuracy", version=1, needs=["generation"], higher_is_better=None,
               bounds=(0.0, 1.0), binary=True, capabilities=_GEN)  # fmt: skip
def exact_match_accuracy(sample: Sample) -> float:
    """1 when the answer's ROUGE-L F1 against the reference is exactly 1 (MedForget accuracy)."""
    return 1.0 if _rouge_l_f1(sample["obs"]["generation"], sample["answer"]) == 1.0 else 0.0


@sample_metric("gen_score", version=1, needs=["generation", _JUDGE], higher_is_better=None,
               bounds=(0.0, 1.0), capabilities=_GEN)  # fmt: skip
def gen_score(sample: Sample) -> float:
    """MedForget Gen Score: 0.25 x ROUGE-L F1 + 0.75 x judge factuality / 10 (failure: 0)."""
    return gen_score_value(rouge_l_f1(sample), _factuality(sample))


@sample_metric("judge_factuality", bounds=(1.0, 10.0), version=1, needs=["generation", _JUDGE],
               higher_is_better=None, capabilities=_GEN, aggregate="mean_defined")  # fmt: skip
def judge_factuality(sample: Sample) -> float:
    """The judge's factuality score (1-10); failed judgements are left out of the mean."""
    score = _factuality(sample)
    return math.nan if score is None else score


@sample_metric("judge_failed", version=1, needs=["generation", _JUDGE], higher_is_better=False,
               bounds=(0.0, 1.0), binary=True, capabilities=_GEN)  # fmt: skip
def judge_failed(sample: Sample) -> float:
    """1 when the judge's reply failed the strict parser (its factuality then counts as 0)."""
    return 1.0 if _factuality(sample) is None else 0.0


@derived_metric("judge_failures", bounds=(0.0, math.inf), version=1, higher_is_better=False)
def judge_failures(run: Any, reference: Any) -> DerivedResult:
    """How many judge replies failed the parser, over every judged eval set of the run."""
    per_set: dict[str, int] = {}
    for name, samples in sorted(run.by_set.items()):
        judged = [s for s in samples if _JUDGE in s.get("obs", {})]
        if judged:
            per_set[name] = sum(_factuality(s) is None for s in judged)
    if not per_set:
        return DerivedResult(None, "no judged samples")
    detail = ", ".join(f"{name}={count}" for name, count in per_set.items())
    return DerivedResult(float(sum(per_set.values())), f"failed judgements per set: {detail}")
