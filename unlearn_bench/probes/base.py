"""The probe seam: a registry of probe families, name parsing and the shared evaluation step."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry import Registry

if TYPE_CHECKING:
    from unlearn_bench.backends.base import Backend
    from unlearn_bench.config import ProbeSettings, RunConfig
    from unlearn_bench.tasks import TaskSpec

Record = dict[str, Any]
NAME = re.compile(r"^([a-z]+)-?(\d+)?$")


@dataclass
class ProbeContext:
    """What every probe reads: the run's config, the task and its loaded splits."""

    config: RunConfig
    spec: TaskSpec
    splits: dict[str, list[Record]]

    @property
    def settings(self) -> ProbeSettings:
        """The run's probe settings."""
        return self.config.probe_settings


def probe_set_names(spec: TaskSpec) -> list[str]:
    """The eval sets probes evaluate: the task's declared list, or every forget-split set."""
    names = spec.probes.eval_sets
    if names is None:
        names = [n for n, e in spec.evaluation.items() if e.split == spec.splits.forget]
    unknown = [n for n in names if n not in spec.evaluation]
    if unknown or not names:
        raise UnlearnBenchError(
            f"task {spec.name}: probes.eval_sets {names} must name eval sets of the task"
        )
    return names


class Probe:
    """One probe instance (family plus argument); subclasses override what they transform."""

    family: ClassVar[str]
    version: ClassVar[int] = 1
    needs_arg: ClassVar[bool] = False

    def __init__(self, arg: int | None) -> None:
        if self.needs_arg and arg is None:
            raise UnlearnBenchError(f"probe {self.family!r} needs a number, e.g. {self.family}-8")
        if not self.needs_arg and arg is not None:
            raise UnlearnBenchError(f"probe {self.family!r} takes no number")
        self.arg = arg

    @property
    def label(self) -> str:
        """The probe's part of a record label (``relearn-20``, ``int4``, ``prefix``)."""
        return self.family if self.arg is None else f"{self.family}-{self.arg}"

    def check(self, ctx: ProbeContext) -> None:
        """Refuse bad input with a one-line error before any model is loaded."""
        probe_set_names(ctx.spec)

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """What the run header records of this probe."""
        return {"name": self.label, "family": self.family, "version": self.version}

    def eval_sets(self, ctx: ProbeContext) -> dict[str, list[Record]]:
        """The records evaluated, per probe eval set (the task's own slices by default)."""
        limit = ctx.config.eval.limit
        return {
            name: ctx.splits[ctx.spec.evaluation[name].split][: ctx.spec.evaluation[name].limit][
                :limit
            ]
            for name in probe_set_names(ctx.spec)
        }

    def model_path(self, ctx: ProbeContext, model_path: str) -> str:
        """The model the probe evaluates (relearning trains a new one)."""
        return model_path

    def open_backend(self, ctx: ProbeContext, model_path: str) -> Backend:
        """The backend that evaluates (quantization transforms its weights)."""
        from unlearn_bench.runner import make_backend

        return make_backend(ctx.config, model_path)  # type: ignore[no-any-return]

    def evaluate(
        self, ctx: ProbeContext, backend: Backend, sets: dict[str, list[Record]]
    ) -> tuple[list[Record], dict[str, Any]]:
        """The task's ordinary evaluation of ``sets``: (samples, aggregates per set/metric)."""
        from unlearn_bench.evaluate import collect_observations, score_samples

        spec = restricted_spec(ctx.spec, list(sets))
        samples = collect_observations(
            backend, spec, sets, ctx.config.eval.max_new_tokens, ctx.config.data_dir
        )
        results = score_samples(spec, samples)
        return [s for group in samples.values() for s in group], results


def restricted_spec(spec: TaskSpec, set_names: list[str]) -> TaskSpec:
    """The task with only ``set_names`` evaluated and no derived metrics."""
    evaluation = {n: spec.evaluation[n] for n in set_names}
    return dataclasses.replace(spec, evaluation=evaluation, derived=[])


PROBES: Registry[type[Probe]] = Registry("probe", indexed=True)


@dataclass
class ParsedName:
    """A probe name split into its family and its number (``relearn-20`` -> relearn, 20)."""

    family: str
    arg: int | None = field(default=None)


def parse_name(name: str) -> ParsedName:
    """Split ``int4`` / ``relearn-20`` / ``prefix``; anything else is a one-line error."""
    match = NAME.match(name)
    if not match:
        raise UnlearnBenchError(
            f"bad probe name {name!r}; examples: relearn-20, int4, paraphrase, prefix, leak-8"
        )
    return ParsedName(match.group(1), int(match.group(2)) if match.group(2) else None)


def make_probe(name: str) -> Probe:
    """The probe a name stands for; an unknown family is a one-line error."""
    parsed = parse_name(name)
    return PROBES.get(parsed.family)(parsed.arg)
