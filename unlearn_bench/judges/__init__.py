"""Post-generation scorers: judges, reference models and similarity to the original model.

A task names them under ``scorers:`` by *slot*; each slot is filled by one scorer *kind*::

    scorers:
      harm: {kind: probe, labelled: "pku:local:v0"}
      fluency: {kind: reference_ppl, model: smollm2-135m}

After generation, :func:`run_scorers` runs every slot a metric needs and stores the result
under ``sample["obs"]["scorer:<slot>"]`` with the scorer's ``kind`` and ``identity`` (name,
version, model and weights hash, training set): metrics stay pure functions of stored
samples, ``unlearn-bench score`` re-scores without any model, and each result names its judge.
There is no default judge: a slot a metric needs but the task leaves empty is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry import Registry

if TYPE_CHECKING:
    from unlearn_bench.backends.base import Backend, GenerateRequest
    from unlearn_bench.tasks import TaskSpec

#: Which scorer kinds may fill which slot.
SLOTS: dict[str, tuple[str, ...]] = {
    "harm": ("probe", "classifier", "llm"),
    "hallucination": ("probe", "classifier", "llm"),
    "fluency": ("reference_ppl",),
    "reward": ("reward_model",),
    "similarity": ("bleurt", "minilm"),
    "factuality": ("llm_factuality",),  # MedForget's Gen Score
}

SCORERS: Registry[Any] = Registry("scorer", indexed=True)


@dataclass(frozen=True)
class ScorerContext:
    """What a scorer may use besides the samples: the task and the evaluated model's backend."""

    spec: TaskSpec
    slot: str
    evaluated: Backend
    data_dir: str | None = None  # the run's data folder (labelled sets of probe judges)


@dataclass
class ScoreItem:
    """One generated sample: its record + observations, and the request that produced it."""

    sample: dict[str, Any]
    request: GenerateRequest

    @property
    def question(self) -> str:
        """The sample's question."""
        return str(self.sample["question"])

    @property
    def generation(self) -> str:
        """The evaluated model's generated output."""
        return str(self.sample["obs"]["generation"])


class Scorer:
    """Base for scorers: ``score`` returns one JSON-able dict per item (stored in the sample)."""

    kind: ClassVar[str] = ""

    def __init__(self, context: ScorerContext) -> None:
        self.context = context

    def identity(self) -> dict[str, Any]:
        """Name, version, model and weights hash: stored with every result."""
        raise NotImplementedError

    def score(self, items: list[ScoreItem]) -> list[dict[str, Any]]:
        """One JSON-able result per item."""
        raise NotImplementedError

    def close(self) -> None:
        """Free models; the default has nothing to free."""


def _scorer_config(spec: TaskSpec, slot: str, where: str) -> tuple[str, dict[str, Any]]:
    if slot not in spec.scorers:
        raise UnlearnBenchError(f"{where}: a metric needs scorer slot {slot!r}; add scorers.{slot}")
    config = dict(spec.scorers[slot])
    if "trust_remote_code" in config:
        # Remote code runs on the user's machine: only the run configuration may allow it.
        raise UnlearnBenchError(
            f"{where}: scorers.{slot}.trust_remote_code is not allowed in a task file; "
            "only the run configuration may enable remote code"
        )
    kind = config.pop("kind", None)
    if kind not in SLOTS[slot]:
        raise UnlearnBenchError(
            f"{where}: scorers.{slot}.kind must be one of {list(SLOTS[slot])}, got {kind!r}"
        )
    return str(kind), config


def check_scorers(spec: TaskSpec, where: str) -> None:
    """Validate the task's ``scorers`` without loading any model (``unlearn-bench validate``)."""
    from unlearn_bench.metrics import METRICS

    unknown = sorted(set(spec.scorers) - set(SLOTS))
    if unknown:
        raise UnlearnBenchError(
            f"{where}: unknown scorer slot {unknown[0]!r}; known: {list(SLOTS)}"
        )
    for slot in spec.scorers:
        _scorer_config(spec, slot, where)
    for eval_set in spec.evaluation.values():
        for name in eval_set.metrics:
            for need in METRICS.get(name).needs:
                if need.startswith("scorer:"):
                    _scorer_config(spec, need.split(":", 1)[1], where)


def build_scorer(
    spec: TaskSpec, slot: str, evaluated: Backend, data_dir: str | None = None
) -> Scorer:
    """The scorer the task puts in ``slot``, built with its configured arguments."""
    kind, args = _scorer_config(spec, slot, spec.name)
    cls = SCORERS.get(kind)
    try:
        return cls(ScorerContext(spec, slot, evaluated, data_dir), **args)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise UnlearnBenchError(f"scorers.{slot} ({kind}): bad arguments: {exc}") from None


def run_scorers(
    spec: TaskSpec,
    evaluated: Backend,
    generated: list[tuple[dict[str, Any], GenerateRequest]],
    data_dir: str | None = None,
) -> None:
    """Fill ``obs["scorer:<slot>"]`` of every generated sample whose metrics need that slot."""
    from unlearn_bench.metrics import needed_observations

    by_slot: dict[str, list[ScoreItem]] = {}
    for sample, request in generated:
        needs = needed_observations(spec.evaluation[sample["eval_set"]].metrics)
        for need in sorted(n for n in needs if n.startswith("scorer:")):
            by_slot.setdefault(need.split(":", 1)[1], []).append(ScoreItem(sample, request))
    for slot, items in by_slot.items():
        scorer = build_scorer(spec, slot, evaluated, data_dir)
        try:
            results = scorer.score(items)
            identity = scorer.identity()
        finally:
            scorer.close()
        for item, result in zip(items, results, strict=True):
            item.sample["obs"][f"scorer:{slot}"] = {
                **result, "kind": scorer.kind, "identity": identity
            }  # fmt: skip


_PLACEHOLDER = re.compile(r"\{(question|response|reference)\}")


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    """Substitute ``{question}``, ``{response}``, ``{reference}`` in one pass over the template.

    One pass, so a generation, question or reference that itself contains a placeholder stays
    verbatim instead of receiving another field (chained ``str.replace`` calls re-scan the text
    they inserted: a generation reading ``{reference}`` would get the gold answer spliced in).
    Every LLM judge's prompt is filled here.
    """
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
