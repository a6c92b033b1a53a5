"""What derived metrics read: a run's samples and aggregates, and a reference model's values.

``RunView`` is a run as derived metrics see it. ``ReferenceValues`` is what TOFU's reference
(retain) model contributes, per forget-set item: its truth ratio R (forget quality's KS test),
its Min-K% AUC (PrivLeak) and its answer log-probs on forget and holdout (Reference attack).
``scoring.as_reference`` computes them once for a run used as reference; the importers in
``references`` read them from published logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from unlearn_bench.errors import UnlearnBenchError

if TYPE_CHECKING:
    from unlearn_bench.runs import RunRecord

FORMAT_VERSION = 1
RECORD_SET = "reference_values"  # eval-set name of the one sample a reference record holds


@dataclass
class ReferenceValues:
    """Per-item values of a reference model; AUCs in the standard orientation (1 = members)."""

    label: str
    kind: str  # "run", "open-unlearning" or "tofu-eval-log"
    source: str
    truth_ratios: dict[int, float]  # forget eval-set index -> raw truth ratio R
    questions: dict[int, str] = field(default_factory=dict)  # forget index -> question text
    mia_auc: dict[str, float] = field(default_factory=dict)  # attack -> AUC
    answer_logprobs: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The values as a JSON-able dict (``from_json`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReferenceValues:
        """Values written by ``to_json`` (JSON object keys are strings; indices become ints)."""

        def keyed(d: dict[str, Any]) -> dict[int, Any]:
            return {int(k): v for k, v in d.items()}

        return cls(
            label=data["label"],
            kind=data["kind"],
            source=data["source"],
            truth_ratios=keyed(data["truth_ratios"]),
            questions=keyed(data.get("questions", {})),
            mia_auc=dict(data.get("mia_auc", {})),
            answer_logprobs={k: keyed(v) for k, v in data.get("answer_logprobs", {}).items()},
            notes=list(data.get("notes", [])),
            version=int(data.get("version", FORMAT_VERSION)),
        )


@dataclass
class RunView:
    """What derived metrics read of a run: its samples by eval set and its aggregates.

    ``values`` is set (once, by ``scoring.as_reference``) on a run used as reference.
    """

    label: str
    by_set: dict[str, list[dict[str, Any]]]
    set_results: dict[str, Any]
    values: ReferenceValues | None = None

    @classmethod
    def load(cls, record: RunRecord, task: str) -> RunView:
        """The stored samples of ``task`` in a run record, grouped by eval set."""
        samples = record.read_samples(task)
        if not samples:
            raise UnlearnBenchError(f"run {record.root} has no samples for task {task!r}")
        by_set: dict[str, list[dict[str, Any]]] = {}
        for sample in samples:
            by_set.setdefault(sample["eval_set"], []).append(sample)
        header = record.header
        return cls(header.get("run_id", record.root.name), by_set, header.get("set_results", {}))

    def samples(self, eval_set: str) -> list[dict[str, Any]]:
        """The samples of one eval set; a set the run lacks is an error."""
        if eval_set not in self.by_set:
            raise UnlearnBenchError(f"run {self.label} has no eval set {eval_set!r}")
        return self.by_set[eval_set]

    def value(self, eval_set: str, metric: str) -> float | None:
        """The aggregate of ``metric`` on ``eval_set``, or None when it was not computed."""
        entry = self.set_results.get(f"{eval_set}/{metric}")
        return None if entry is None else cast("float | None", entry["value"])

    def reference_values(self) -> ReferenceValues:
        """The values of a run used as reference, which ``scoring.as_reference`` computed."""
        if self.values is None:
            raise UnlearnBenchError(
                f"reference {self.label}: its values were not computed (scoring.as_reference)"
            )
        return self.values
