"""TOFU's membership-inference suite: per-sample attack scores, forget-vs-holdout AUCs, PrivLeak.

Sample metrics (eval sets ``forget`` and ``holdout``) hold each attack's member-ness score of
the answer, higher = more likely trained on (``metrics.mia``). Derived metrics turn them into a
ROC AUC of forget (members) against holdout (non-members) with scikit-learn's
``roc_auc_score``, reported in the **standard** orientation: 1 = the forget answers are
recognisably members, 0.5 = indistinguishable from never-seen holdout answers. That is the
orientation of open-unlearning's TOFU ``mia_*`` numbers, so they compare directly.

PrivLeak (SPEC, Shi et al. 2024) = (AUC_unlearned - AUC_retain) / AUC_retain x 100 on the Min-K%
(k = 0.4) attack in MUSE's orientation (= 1 - the standard AUC), the retain model's AUC from
the reference: about 0 is ideal, about -100 under-unlearning, positive over-unlearning. It is
registered as ``tofu_privleak``: MUSE's ``privleak`` reads MUSE's own eval sets.

The Reference attack (Carlini et al. 2021) needs the reference model's answer log-probs per
item; they come from the reference run's stored samples (TOFU: the retain model), never from a
second model loaded here: metrics do not run models.
"""

from __future__ import annotations

import math
from typing import Any

from unlearn_bench.metrics import DerivedResult, Sample, derived_metric, sample_metric
from unlearn_bench.metrics import mia as attacks
from unlearn_bench.metrics.stats import privleak
from unlearn_bench.metrics.views import RunView

MIN_K = 0.4  # SPEC / MUSE: Min-40%
FORGET, HOLDOUT = "forget", "holdout"
CONVENTION_NOTE = "AUC orientation 'standard' (1 = forget items detectable as members)"


def _lp(sample: Sample) -> list[float]:
    return sample["obs"]["answer"]["logprobs"]


@sample_metric(
    "mia_loss", bounds=(-math.inf, 0.0), version=1, needs=["answer"], higher_is_better=None
)
def mia_loss(sample: Sample) -> float:
    """LOSS attack (Yeom et al. 2018) member-ness: mean answer-token log-prob (= -mean NLL)."""
    return attacks.loss_score(_lp(sample))


@sample_metric(
    "mia_zlib", bounds=(-math.inf, 0.0), version=1, needs=["answer"], higher_is_better=None
)
def mia_zlib(sample: Sample) -> float:
    """ZLib attack (Carlini et al. 2021) member-ness: -mean NLL / zlib length of the answer."""
    return attacks.zlib_score(_lp(sample), sample["answer"])


@sample_metric(
    "mia_min_k", bounds=(-math.inf, 0.0), version=1, needs=["answer"], higher_is_better=None
)
def mia_min_k(sample: Sample) -> float:
    """Min-K% Prob (Shi et al. 2024) member-ness: mean of the lowest 40% answer log-probs."""
    return attacks.min_k_score(_lp(sample), MIN_K)


@sample_metric(
    "mia_min_k_plus_plus",
    bounds=(-math.inf, math.inf),
    version=1,
    needs=["answer", "answer_vocab_stats"],
    higher_is_better=None,
    capabilities=("logprobs", "vocab_stats"),
)
def mia_min_k_plus_plus(sample: Sample) -> float:
    """Min-K%++ (Zhang et al. 2024): Min-40% of per-position standardised answer log-probs."""
    stats = sample["obs"]["answer_vocab_stats"]
    return attacks.min_k_plus_plus_score(_lp(sample), stats["means"], stats["stds"], MIN_K)


@sample_metric(
    "mia_gradnorm",
    bounds=(0.0, math.inf),
    version=1,
    needs=["answer_grad_norm"],
    higher_is_better=None,
    capabilities=("grad",),
)
def mia_gradnorm(sample: Sample) -> float:
    """GradNorm member-ness: -L2 norm of the gradient of the mean answer NLL, all parameters."""
    return attacks.gradnorm_score(sample["obs"]["answer_grad_norm"]["l2"])


@sample_metric(
    "mia_gradnorm_mean_param",
    bounds=(0.0, math.inf),
    version=1,
    needs=["answer_grad_norm"],
    higher_is_better=None,
    capabilities=("grad",),
)
def mia_gradnorm_mean_param(sample: Sample) -> float:
    """GradNorm variant (open-unlearning / mimir code): -mean of per-tensor gradient L2 norms."""
    return attacks.gradnorm_score(sample["obs"]["answer_grad_norm"]["mean_param_l2"])


#: attack name (as open-unlearning's ``mia_<attack>``) -> the sample metric holding its score
ATTACK_METRICS: dict[str, Any] = {
    "loss": mia_loss,
    "zlib": mia_zlib,
    "min_k": mia_min_k,
    "min_k_plus_plus": mia_min_k_plus_plus,
    "gradnorm": mia_gradnorm,
    "gradnorm_mean_param": mia_gradnorm_mean_param,
}


def attack_scores(view: Any, attack: str) -> tuple[list[float], list[float]]:
    """Member-ness of every forget and holdout sample of a run, from stored observations."""
    fn = ATTACK_METRICS[attack]
    return [fn(s) for s in view.samples(FORGET)], [fn(s) for s in view.samples(HOLDOUT)]


def attack_auc(view: Any, attack: str) -> float:
    """Standard-orientation ROC AUC of one attack, forget (members) vs holdout."""
    forget, holdout = attack_scores(view, attack)
    return attacks.mia_auc(forget, holdout, convention="standard")


def _auc_result(run: RunView, attack: str) -> DerivedResult:
    forget, holdout = attack_scores(run, attack)
    value = attacks.mia_auc(forget, holdout, convention="standard")
    note = f"{CONVENTION_NOTE}; n_forget={len(forget)}, n_holdout={len(holdout)}"
    return DerivedResult(value, note)


@derived_metric("mia_loss_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_loss_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the LOSS attack, forget vs holdout answers (1 = members)."""
    return _auc_result(run, "loss")


@derived_metric("mia_zlib_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_zlib_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the ZLib attack, forget vs holdout answers (1 = members)."""
    return _auc_result(run, "zlib")


@derived_metric("mia_min_k_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_min_k_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the Min-40% attack, forget vs holdout answers (1 = members)."""
    return _auc_result(run, "min_k")


@derived_metric("mia_min_k_plus_plus_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_min_k_plus_plus_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the Min-40%++ attack, forget vs holdout answers (1 = members)."""
    return _auc_result(run, "min_k_plus_plus")


@derived_metric("mia_gradnorm_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_gradnorm_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the GradNorm (global L2) attack, forget vs holdout answers (1 = members)."""
    return _auc_result(run, "gradnorm")


@derived_metric("mia_gradnorm_mean_param_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None)
def mia_gradnorm_mean_param_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the GradNorm (mean per-tensor L2, open-unlearning variant) attack, forget vs holdout answers (1 = members)."""  # noqa: E501
    return _auc_result(run, "gradnorm_mean_param")


def _paired_reference_scores(
    run: Any, eval_set: str, reference_logprobs: dict[int, list[float]]
) -> list[float]:
    return [
        attacks.reference_score(_lp(s), reference_logprobs[s["index"]])
        for s in run.samples(eval_set)
        if s["index"] in reference_logprobs
    ]


@derived_metric(
    "mia_reference_auc", bounds=(0.0, 1.0), version=1, higher_is_better=None, needs_reference=True
)
def mia_reference_auc(run: RunView, reference: RunView | None) -> DerivedResult:
    """ROC AUC of the Reference attack, NLL(this model) - NLL(reference model), forget vs holdout.

    The reference model is the reference run's (TOFU: the retain model, as open-unlearning
    uses); its answer log-probs are paired with this run's by eval-set index.
    """
    if reference is None:
        return DerivedResult(None, "no reference run: the Reference attack left empty")
    ref = reference.reference_values()
    per_set = {name: ref.answer_logprobs.get(name) or {} for name in (FORGET, HOLDOUT)}
    if not per_set[FORGET] or not per_set[HOLDOUT]:
        return DerivedResult(
            None, f"reference {ref.label} ({ref.kind}) has no per-item forget and holdout log-probs"
        )
    forget = _paired_reference_scores(run, FORGET, per_set[FORGET])
    holdout = _paired_reference_scores(run, HOLDOUT, per_set[HOLDOUT])
    if not forget or not holdout:
        return DerivedResult(None, f"reference {ref.label} shares no forget/holdout items")
    value = attacks.mia_auc(forget, holdout, convention="standard")
    return DerivedResult(
        value,
        f"{CONVENTION_NOTE}; reference={ref.label}; n_forget={len(forget)}, "
        f"n_holdout={len(holdout)}",
    )


@derived_metric(
    "tofu_privleak",
    bounds=(-100.0, math.inf),
    version=1,
    higher_is_better=None,
    needs_reference=True,
)
def tofu_privleak(run: RunView, reference: RunView | None) -> DerivedResult:
    """PrivLeak = (AUC - AUC_retain) / AUC_retain x 100, Min-40% AUC in MUSE's orientation."""
    if reference is None:
        return DerivedResult(None, "no retain reference: PrivLeak left empty")
    ref = reference.reference_values()
    ref_standard = ref.mia_auc.get("min_k")
    if ref_standard is None:
        return DerivedResult(None, f"reference {ref.label} ({ref.kind}) has no Min-K% AUC")
    auc = 1.0 - attack_auc(run, "min_k")  # MUSE orientation: 0 = memorised, 0.5 = unseen
    ref_auc = 1.0 - ref_standard
    if ref_auc == 0.0:
        return DerivedResult(None, f"reference {ref.label}: Min-K% AUC 0, PrivLeak undefined")
    return DerivedResult(
        privleak(auc, ref_auc),
        f"Min-40% AUC (MUSE orientation) {auc:.4f} vs reference {ref.label} ({ref.kind}) "
        f"{ref_auc:.4f}",
        {"auc": auc, "reference_auc": ref_auc},
    )
