"""Turning stored samples into results: per-set aggregates plus derived metrics.

Used at the end of a run and by ``unlearn-bench score``, which re-scores a finished run from
its stored observations with no forward pass.
"""

from __future__ import annotations

import math
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import score_samples
from unlearn_bench.metrics import DERIVED_METRICS
from unlearn_bench.metrics.tofu import raw_truth_ratio
from unlearn_bench.metrics.tofu_mia import ATTACK_METRICS, attack_auc
from unlearn_bench.metrics.views import RECORD_SET, ReferenceValues, RunView
from unlearn_bench.runs import RunRecord
from unlearn_bench.tasks import TaskSpec


def reference_values(view: RunView) -> ReferenceValues:
    """Values of a run, or those a reference record carries (see ``references``)."""
    if RECORD_SET in view.by_set:
        return ReferenceValues.from_json(view.by_set[RECORD_SET][0]["reference_values"])
    # Only the items whose truth-ratio observations were collected count.
    forget = [
        s
        for s in view.by_set.get("forget", [])
        if {"paraphrased_answer", "perturbed_answer"} <= s["obs"].keys()
    ]
    values = ReferenceValues(
        label=view.label,
        kind="run",
        source=view.label,
        truth_ratios={s["index"]: raw_truth_ratio(s) for s in forget},
        questions={s["index"]: s["question"] for s in forget},
    )
    if "holdout" in view.by_set:
        for attack in ATTACK_METRICS:
            try:
                values.mia_auc[attack] = attack_auc(view, attack)
            except (KeyError, ValueError, UnlearnBenchError):  # observations not collected
                continue
        for name in ("forget", "holdout"):
            values.answer_logprobs[name] = {
                s["index"]: s["obs"]["answer"]["logprobs"]
                for s in view.by_set.get(name, [])
                if "answer" in s["obs"]
            }
    return values


def as_reference(reference: RunView | ReferenceValues) -> RunView:
    """A reference as derived metrics take it: a RunView whose values are computed (once)."""
    if isinstance(reference, ReferenceValues):
        return RunView(reference.label, {}, {}, values=reference)
    if reference.values is None:  # several derived metrics and runs read one reference
        reference.values = reference_values(reference)
    return reference


def derived_results(spec: TaskSpec, view: RunView, reference: RunView | None) -> dict[str, Any]:
    """The task's derived metrics of one run, as result entries by name."""
    if reference is not None and any(DERIVED_METRICS.get(n).needs_reference for n in spec.derived):
        reference = as_reference(reference)
    out = {}
    for name in spec.derived:
        metric = DERIVED_METRICS.get(name)
        try:
            result = metric.fn(view, reference)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            # As for sample metrics: damaged stored values stop the run with one line.
            raise UnlearnBenchError(
                f"derived metric {name} cannot be computed: {type(exc).__name__}: {exc}"
            ) from None
        value = result.value
        out[name] = {
            "value": None
            if value is None or (isinstance(value, float) and math.isnan(value))
            else value,
            "stderr": None,
            "n": None,
            "higher_is_better": metric.higher_is_better,
            "version": metric.version,
            "note": result.note,
            **result.extra,  # e.g. a bootstrap "ci"
        }
    return out


def finalize_results(
    record: RunRecord, spec: TaskSpec, reference: RunView | None
) -> dict[str, Any]:
    """Write ``results.json`` for a run whose samples are complete, then mark it finished."""
    view = RunView.load(record, spec.name)
    utility = record.header.get("utility_results") or {}  # lm-eval tasks (utility section)
    results = {spec.name: {**view.set_results, **derived_results(spec, view, reference), **utility}}
    record.write_results(results)
    record.finish()
    return results


def rescore(record: RunRecord, spec: TaskSpec, reference: RunView | None) -> dict[str, Any]:
    """Results of a run scored afresh from its stored samples (``unlearn-bench score``)."""
    view = RunView.load(record, spec.name)
    view.set_results = score_samples(spec, view.by_set)
    return {spec.name: {**view.set_results, **derived_results(spec, view, reference)}}
