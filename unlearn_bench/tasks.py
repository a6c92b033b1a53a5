"""Task specs: strict parsing and validation of ``tasks/**/*.yaml``, and loading their data.

A task file names its data source, prompt format, evaluation sets with their metrics, the
derived metrics, and what it ``requires`` of a backend. One inheritance mechanism: ``include``
names a base file (relative path) whose mapping is deep-merged under this one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry import Registry
from unlearn_bench.yaml_strict import build_dataclass, load_yaml

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
CAPABILITIES = ("logprobs", "generate", "vocab_stats", "grad", "vision")

Record = dict[str, Any]
DataSource = Callable[[dict[str, Any], Path | None], dict[str, list[Record]]]
DATA_SOURCES: Registry[DataSource] = Registry("data source", indexed=True)


@dataclass(frozen=True)
class DataSpec:
    """The task's data source and its options."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptSpec:
    """How questions are formatted for the model (chat, tags, template or icl)."""

    style: str = "chat"  # "chat": the model's chat template; "tags": explicit tags below
    system: str | None = None  # None keeps the chat template's own default system prompt
    question_tag: str = "Question: "
    answer_tag: str = "\nAnswer: "
    # "template" style: ``{question}`` is replaced by the question; the continuation (answer)
    # follows after ``answer_prefix``. Default: Yao et al. 2023's format.
    template: str = "### Question: {question}\n ### Answer:"
    answer_prefix: str = " "
    # "icl" style (MUSE KnowMem): the record's ``icl`` shots as ``{question_tag}{q}{answer_tag}{a}``
    # each followed by a blank line, then ``{question_tag}{question}{answer_tag}`` verbatim.


@dataclass(frozen=True)
class GenerationSpec:
    """Generation length and stop strings."""

    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SplitsSpec:
    """Which data splits play which role in the unlearning protocol."""

    full: str = "full"
    retain: str = "retain"
    forget: str = "forget"
    holdout: str | None = None


@dataclass(frozen=True)
class EvalSetSpec:
    """One eval set: its split, metrics, item limit and optional overrides."""

    split: str
    metrics: list[str]
    limit: int | None = None
    # Per-set overrides of the task's prompt / generation (MUSE: raw continuation for VerbMem,
    # in-context QA for KnowMem, in one task).
    prompt: PromptSpec | None = None
    generation: GenerationSpec | None = None


@dataclass(frozen=True)
class RelearnSplitSpec:
    """Which forget items a relearning probe trains on and which it evaluates (slices)."""

    train: str
    """Items relearned, as ``split[start:stop]`` (e.g. ``forget[:4]``)."""
    evaluate: str
    """Items evaluated after relearning, as ``split[start:stop]``; must not overlap ``train``."""


@dataclass(frozen=True)
class ProbesSpec:
    """How robustness probes (unlearn_bench.probes) apply to this task; all fields optional."""

    metric: str | None = None
    """Headline forget metric of the robustness table (an eval-set metric, higher = more leak)."""
    leak_metric: str | None = None
    """Per-generation leak score for Leak@k (a generation metric, e.g. rouge_l_recall)."""
    eval_sets: list[str] | None = None
    """Eval sets a probe evaluates; None: every set on the forget split."""
    paraphrase_field: str | None = None
    """Record field holding the paraphrased question (TOFU: paraphrased_question)."""
    prefix: str = "Sure, here is the answer:"
    """Assistant prefix written before the answer by the ``prefix`` probe."""
    relearn: RelearnSplitSpec | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task file."""

    name: str
    version: int
    data: DataSpec
    evaluation: dict[str, EvalSetSpec]
    description: str = ""
    include: str | None = None
    prompt: PromptSpec = field(default_factory=PromptSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    splits: SplitsSpec = field(default_factory=SplitsSpec)
    requires: list[str] = field(default_factory=lambda: ["logprobs", "generate"])
    derived: list[str] = field(default_factory=list)
    # Post-generation scorers (judges, reference models) by slot name; see unlearn_bench.judges.
    scorers: dict[str, dict[str, Any]] = field(default_factory=dict)
    probes: ProbesSpec = field(default_factory=ProbesSpec)
    path: str = ""

    def fingerprint(self) -> str:
        """Hash of everything that changes the data or the scores (cache keys, run headers)."""
        payload = dataclasses.asdict(self)
        payload.pop("path", None)
        payload.pop("description", None)
        # Probes change neither the data nor the ordinary scores (each probe record names its
        # own settings), so declaring them keeps a task's checkpoints and cached responses.
        payload.pop("probes", None)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise UnlearnBenchError(f"{path}: include cycle")
    data = load_yaml(path)
    include = data.get("include")
    if include:
        base = _read_with_includes((path.parent / include).resolve(), (*seen, path))
        data = _deep_merge(base, data)
    return data


def read_task(path: str | Path) -> TaskSpec:
    """Parse a task file against the schema; every problem is a one-line error naming the file.

    Checks that need the metric and judge registries (metric names, capabilities, scorer slots)
    are ``evaluate.parse_task``'s, so reading a task file imports no metrics or judges.
    """
    path = Path(path).resolve()
    data = _read_with_includes(path)
    data["evaluation"] = {
        name: build_dataclass(EvalSetSpec, spec, f"{path.name}: evaluation.{name}")
        for name, spec in (data.get("evaluation") or {}).items()
    }
    data.setdefault("path", str(path))
    try:
        spec: TaskSpec = build_dataclass(TaskSpec, data, path.name)
    except UnlearnBenchError as exc:
        raise UnlearnBenchError(str(exc)) from None
    _validate(spec, path.name)
    return spec


def _validate(spec: TaskSpec, where: str) -> None:
    if spec.data.source not in DATA_SOURCES:
        raise UnlearnBenchError(f"{where}: unknown data source {spec.data.source!r}")
    for label, prompt in [("prompt", spec.prompt)] + [
        (f"evaluation.{n}.prompt", e.prompt) for n, e in spec.evaluation.items() if e.prompt
    ]:
        if prompt.style not in ("chat", "tags", "template", "icl"):
            raise UnlearnBenchError(
                f"{where}: {label}.style must be 'chat', 'tags', 'template' or 'icl'"
            )
        if prompt.style == "template" and "{question}" not in prompt.template:
            raise UnlearnBenchError(f"{where}: {label}.template must contain '{{question}}'")
    for cap in spec.requires:
        if cap not in CAPABILITIES:
            raise UnlearnBenchError(f"{where}: unknown capability {cap!r} in requires")
    if not spec.evaluation:
        raise UnlearnBenchError(f"{where}: evaluation must name at least one eval set")
    for name, eval_set in spec.evaluation.items():
        limit = eval_set.limit
        # 0 left nothing to evaluate; a negative slice bound silently dropped items.
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise UnlearnBenchError(f"{where}: evaluation.{name}.limit must be >= 1, got {limit}")


def find_task(name_or_path: str) -> Path:
    """Resolve a task name (searched under tasks/ and $UNLEARN_BENCH_TASKS) or a file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_dir():
            raise UnlearnBenchError(f"task file {candidate} is a directory, expected a file")
        if not candidate.is_file():
            raise UnlearnBenchError(f"task file not found: {candidate}")
        return candidate
    for root in task_roots():
        matches = sorted(root.rglob(f"{name_or_path}.yaml"))
        if matches:
            return matches[0]
    known = ", ".join(sorted(p.stem for p in all_task_files())) or "none"
    raise UnlearnBenchError(f"unknown task {name_or_path!r}; known: {known}")


def task_roots() -> list[Path]:
    """Folders searched for task files: $UNLEARN_BENCH_TASKS, then tasks/."""
    extra = [Path(p) for p in os.environ.get("UNLEARN_BENCH_TASKS", "").split(os.pathsep) if p]
    return [*extra, TASKS_DIR]


def all_task_files() -> list[Path]:
    # Files starting with "_" are bases meant only for ``include``.
    """Every task file under the task roots, except ``_`` bases."""
    return [
        p
        for root in task_roots()
        if root.is_dir()
        for p in sorted(root.rglob("*.yaml"))
        if not p.name.startswith("_")
    ]


def load_task_data(spec: TaskSpec, data_dir: str | Path | None = None) -> dict[str, list[Record]]:
    """Load every split the task's data source provides, and check the roles' splits exist."""
    source = DATA_SOURCES.get(spec.data.source)
    splits = source(dict(spec.data.options), Path(data_dir) if data_dir else None)
    roles = dataclasses.asdict(spec.splits)
    wanted = [s for s in roles.values() if s] + [e.split for e in spec.evaluation.values()]
    for split in wanted:
        if split not in splits:
            raise UnlearnBenchError(
                f"task {spec.name}: split {split!r} not provided by {spec.data.source} "
                f"(has: {', '.join(sorted(splits))})"
            )
    if not splits[spec.splits.forget]:
        raise UnlearnBenchError(
            f"task {spec.name}: the forget split {spec.splits.forget!r} is empty"
        )
    return splits
