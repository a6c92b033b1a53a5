"""Turning stored samples into results: per-set aggregates plus derived metrics.

Used at the end of a run and by ``unlearn-bench score``, which re-scores a finished run from
its stored observations with no forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.metrics import DERIVED_METRICS
from unlearn_bench.runs import RunRecord
from unlearn_bench.tasks import TaskSpec


@dataclass
class RunView:
    """What derived metrics read of a run: its samples by eval set and its aggregates."""

    label: str
    by_set: dict[str, list[dict[str, Any]]]
    set_results: dict[str, Any]

    @classmethod
    def load(cls, record: RunRecord, task: str) -> RunView:
        samples = record.read_samples(task)
        if not samples:
            raise UnlearnBenchError(f"run {record.root} has no samples for task {task!r}")
        by_set: dict[str, list[dict[str, Any]]] = {}
        for sample in samples:
            by_set.setdefault(sample["eval_set"], []).append(sample)
        header = record.header
        return cls(header.get("run_id", record.root.name), by_set, header.get("set_results", {}))

    def samples(self, eval_set: str) -> list[dict[str, Any]]:
        if eval_set not in self.by_set:
            raise UnlearnBenchError(f"run {self.label} has no eval set {eval_set!r}")
        return self.by_set[eval_set]

    def value(self, eval_set: str, metric: str) -> float | None:
        entry = self.set_results.get(f"{eval_set}/{metric}")
        return None if entry is None else entry["value"]


def derived_results(spec: TaskSpec, view: RunView, reference: RunView | None) -> dict[str, Any]:
    out = {}
    for name in spec.derived:
        metric = DERIVED_METRICS.get(name)
        result = metric.fn(view, reference)
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
    results = {spec.name: {**view.set_results, **derived_results(spec, view, reference)}}
    record.write_results(results)
    record.finish()
    return results
