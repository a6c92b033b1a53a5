"""TOFU's metrics (Maini et al. 2024) as registered sample and derived metrics.

The arithmetic lives in the pure modules ``likelihood``, ``text`` and ``stats``; this module
says which stored observation each metric reads. Scored tokens are the answer tokens only.
"""

from __future__ import annotations

from unlearn_bench.metrics import DerivedResult, Sample, derived_metric, sample_metric, stats
from unlearn_bench.metrics import likelihood as lk
from unlearn_bench.metrics.text import rouge_l_recall as _rouge_l_recall
from unlearn_bench.metrics.views import RunView


def _lp(sample: Sample, key: str) -> list[float]:
    return sample["obs"][key]["logprobs"]


def _perturbed(sample: Sample) -> list[list[float]]:
    return [p["logprobs"] for p in sample["obs"]["perturbed_answer"]]


def raw_truth_ratio(sample: Sample) -> float:
    """Per-item R = geomean_i P(a'_i|q)^(1/|a'_i|) / P(a~|q)^(1/|a~|) (paraphrased answer)."""
    return lk.truth_ratio(_lp(sample, "paraphrased_answer"), _perturbed(sample))


@sample_metric("probability", bounds=(0.0, 1.0), version=1, needs=["answer"], higher_is_better=True)
def probability(sample: Sample) -> float:
    """P(a|q)^(1/|a|): exp of the mean answer-token log-prob (TOFU "Probability")."""
    return lk.length_normalised_probability(_lp(sample, "answer"))


@sample_metric(
    "normalised_probability",
    bounds=(0.0, 1.0),
    version=1,
    needs=["answer", "perturbed_answer"],
    higher_is_better=True,
)
def normalised_probability(sample: Sample) -> float:
    """P(a|q) / (P(a|q) + sum P(a'|q)), length-normalised (TOFU real authors / world facts)."""
    return lk.normalised_probability(_lp(sample, "answer"), _perturbed(sample))


@sample_metric(
    "rouge_l_recall",
    bounds=(0.0, 1.0),
    version=1,
    needs=["generation"],
    higher_is_better=True,
    capabilities=("generate",),
)
def rouge_l_recall(sample: Sample) -> float:
    """ROUGE-L recall of the greedy answer against the gold answer (rouge-score, stemmer on)."""
    return _rouge_l_recall(sample["obs"]["generation"], sample["answer"])


@sample_metric(
    "truth_ratio_forget",
    bounds=(0.0, 1.0),
    version=1,
    needs=["paraphrased_answer", "perturbed_answer"],
    higher_is_better=None,  # TOFU reports it; closeness to the retain model is what matters
)
def truth_ratio_forget(sample: Sample) -> float:
    """min(R, 1/R) of the truth ratio R (TOFU's forget-set aggregation)."""
    return lk.truth_ratio_forget_score(raw_truth_ratio(sample))


@sample_metric(
    "truth_ratio",
    bounds=(0.0, 1.0),
    version=1,
    needs=["paraphrased_answer", "perturbed_answer"],
    higher_is_better=True,
)
def truth_ratio(sample: Sample) -> float:
    """max(0, 1 - R) of the truth ratio R (TOFU's aggregation on retain / non-forget sets)."""
    return lk.truth_ratio_retain_score(raw_truth_ratio(sample))


@sample_metric(
    "truth_ratio_correct_share",
    bounds=(0.0, 1.0),
    version=1,
    needs=["paraphrased_answer", "perturbed_answer"],
    higher_is_better=True,
)
def truth_ratio_correct_share(sample: Sample) -> float:
    """Pc / (Pc + Pw), the later open-unlearning "correct/(correct+wrong)" truth-ratio variant."""
    return lk.truth_ratio_correct_share(_lp(sample, "paraphrased_answer"), _perturbed(sample))


@sample_metric(
    "exact_memorisation", bounds=(0.0, 1.0), version=1, needs=["answer"], higher_is_better=None
)
def exact_memorisation(sample: Sample) -> float:
    """Share of answer tokens whose teacher-forced argmax equals the label."""
    return lk.exact_memorisation(sample["obs"]["answer"]["greedy"])


@sample_metric(
    "extraction_strength", bounds=(0.0, 1.0), version=1, needs=["answer"], higher_is_better=None
)
def extraction_strength(sample: Sample) -> float:
    """1 - k*/|a|, k* the first position from which every argmax equals the label."""
    return lk.extraction_strength(sample["obs"]["answer"]["greedy"])


def _same_question(mine: str, theirs: str) -> bool:
    # A TOFU eval log stores the formatted prompt ("[INST] q [/INST]"), which contains q.
    return mine.strip() == theirs.strip() or mine.strip() in theirs


@derived_metric(
    "forget_quality",
    bounds=(0.0, 1.0),
    p_value=True,
    version=2,
    higher_is_better=True,
    needs_reference=True,
)
def forget_quality(run: RunView, reference: RunView | None) -> DerivedResult:
    """KS-test p-value of per-item forget truth ratios, this run vs the retain reference.

    Version 2: items are paired with the reference's by forget eval-set index and the test
    runs on the items both have (TOFU's own logs cover the first 300 forget items); where
    both know the question, a mismatch leaves the value empty instead of comparing other items.
    """
    if reference is None:
        return DerivedResult(None, "no retain reference run: forget quality left empty")
    ref = reference.reference_values()
    samples = run.samples("forget")
    common = [s for s in samples if s["index"] in ref.truth_ratios]
    if not common:
        return DerivedResult(None, f"reference {ref.label} shares no forget items with this run")
    for s in common:
        theirs = ref.questions.get(s["index"])
        if theirs is not None and not _same_question(s["question"], theirs):
            return DerivedResult(
                None, f"reference {ref.label} has another question at forget index {s['index']}"
            )
    mine = [raw_truth_ratio(s) for s in common]
    value = stats.forget_quality(mine, [ref.truth_ratios[s["index"]] for s in common])
    note = f"reference={ref.label} ({ref.kind}); n={len(common)}"
    if len(common) < len(samples):
        note += f" of {len(samples)} forget items (those the reference covers)"
    return DerivedResult(value, note)


@derived_metric("retain_utility", bounds=(0.0, 1.0), version=1, higher_is_better=True)
def retain_utility(run: RunView, reference: RunView | None) -> DerivedResult:
    """Harmonic mean of retain {probability, ROUGE-L recall, truth ratio}: 3 of TOFU's 9.

    Not TOFU's model utility, which also needs real-authors and world-facts sets; tasks without
    those sets report this clearly named partial form instead.
    """
    keys = ("probability", "rouge_l_recall", "truth_ratio")
    values = [v for v in (run.value("retain", k) for k in keys) if v is not None]
    if len(values) < len(keys):
        return DerivedResult(None, "retain set lacks probability, rouge_l_recall or truth_ratio")
    return DerivedResult(stats.harmonic_mean(values))


@derived_metric("model_utility", bounds=(0.0, 1.0), version=1, higher_is_better=True)
def model_utility(run: RunView, reference: RunView | None) -> DerivedResult:
    """TOFU model utility: harmonic mean of the nine retain / real-author / world-fact numbers."""
    nine: dict[str, float] = {}
    for eval_set in ("retain", "real_authors", "world_facts"):
        prob_metric = "probability" if eval_set == "retain" else "normalised_probability"
        for out_key, metric in (
            ("probability", prob_metric),
            ("rouge", "rouge_l_recall"),
            ("truth_ratio", "truth_ratio"),
        ):
            value = run.value(eval_set, metric)
            if value is None:
                return DerivedResult(None, f"missing {eval_set}/{metric}: model utility left empty")
            nine[f"{eval_set}_{out_key}"] = value
    return DerivedResult(stats.model_utility(nine))
