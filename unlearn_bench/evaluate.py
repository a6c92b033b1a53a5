"""Evaluation: ask the backend for the observations the metrics need, then score.

Observations for every eval set of a task are requested in one call per kind, so the backend
can bucket by length across sets and the cache sees each distinct request once. Scoring is a
separate pure step (``score_samples``), which is what ``unlearn-bench score`` re-runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.backends.base import (
    Backend,
    GenerateRequest,
    ScoreRequest,
    TokenScores,
    require_capabilities,
    truncate_to_tokens,
)
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.metrics import DERIVED_METRICS, METRICS, SampleMetric, needed_observations
from unlearn_bench.metrics.stats import mean_and_stderr
from unlearn_bench.prompts import format_prompt
from unlearn_bench.tasks import TaskSpec, read_task

SCORED_TOKENS = "answer tokens only (no end-of-turn token), question and answer tokenised apart"
LOGPROB_FIELDS = ("answer", "paraphrased_answer")


@dataclass
class _Pending:
    sample: dict[str, Any]
    field: str
    index: int | None  # position inside perturbed_answer


# Observations that ride on the answer's own forward pass (ScoreRequest flags).
ANSWER_EXTRAS = {"answer_vocab_stats": "vocab_stats", "answer_grad_norm": "grad"}


class _ScoreQueue:
    """Score requests, each distinct (context, continuation) once, extras OR-ed together.

    TOFU's real-authors and world-facts records score the answer as their paraphrase too, and
    one answer may need plain scores on one set and Min-K%++ statistics on another: every
    such duplicate becomes one request, so no forward pass runs twice in a run.
    """

    def __init__(self) -> None:
        self.slots: dict[tuple[str, str, bool], int] = {}
        self.flags: list[tuple[bool, bool]] = []
        self.pending: list[list[_Pending]] = []

    def add(self, request: ScoreRequest, item: _Pending) -> None:
        key = (request.context, request.continuation, request.add_special_tokens)
        slot = self.slots.setdefault(key, len(self.slots))
        if slot == len(self.flags):
            self.flags.append((False, False))
            self.pending.append([])
        stats, grad = self.flags[slot]
        self.flags[slot] = (stats or request.vocab_stats, grad or request.grad_norm)
        self.pending[slot].append(item)

    def run(self, backend: Backend, task: str) -> None:
        requests = [
            ScoreRequest(context, continuation, special, vocab_stats=stats, grad_norm=grad)
            for (context, continuation, special), (stats, grad) in zip(
                self.slots, self.flags, strict=True
            )
        ]
        needed = {"vocab_stats" for r in requests if r.vocab_stats}
        needed |= {"grad" for r in requests if r.grad_norm}
        require_capabilities(backend, needed, task)
        results = backend.logprobs(requests) if requests else []
        for items, result in zip(self.pending, results, strict=True):
            for item in items:
                _store(item, result)


def parse_task(path: str | Path) -> TaskSpec:
    """Read a task file and check it against the metric and judge registries."""
    spec = read_task(path)
    check_task(spec, Path(path).name)
    return spec


def check_task(spec: TaskSpec, where: str) -> None:
    """Every metric known and its capabilities required, derived metrics known, scorers valid."""
    from unlearn_bench.judges import check_scorers

    for set_name, eval_set in spec.evaluation.items():
        if not eval_set.metrics:  # it would be evaluated, stored and never scored
            raise UnlearnBenchError(f"{where}: evaluation.{set_name}.metrics is empty")
        for metric_name in eval_set.metrics:
            metric = METRICS.get(metric_name)
            missing = metric.capabilities - set(spec.requires)
            if missing:
                raise UnlearnBenchError(
                    f"{where}: metric {metric_name!r} in {set_name} needs "
                    f"{sorted(missing)} but the task requires only {spec.requires}"
                )
    for name in spec.derived:
        DERIVED_METRICS.get(name)
    for name in filter(None, (spec.probes.metric, spec.probes.leak_metric)):
        METRICS.get(name)  # robustness probes' metrics (unlearn_bench.probes)
    unknown = [n for n in spec.probes.eval_sets or [] if n not in spec.evaluation]
    if unknown:
        raise UnlearnBenchError(f"{where}: probes.eval_sets names unknown eval set {unknown[0]!r}")
    check_scorers(spec, where)  # also: a metric needing a scorer slot the task leaves empty


def collect_observations(
    backend: Backend,
    spec: TaskSpec,
    sets: dict[str, list[dict[str, Any]]],
    max_new_tokens: int | None = None,
    data_dir: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Return ``{eval set: [sample]}`` where each sample holds its record and ``obs``.

    ``data_dir`` is the run's data folder, passed on to judges that train on labelled data.
    """
    queue = _ScoreQueue()
    gen_requests: list[GenerateRequest] = []
    gen_samples: list[dict[str, Any]] = []
    out: dict[str, list[dict[str, Any]]] = {}
    for set_name, records in sets.items():
        eval_set = spec.evaluation[set_name]
        needs = needed_observations(eval_set.metrics)
        generation = eval_set.generation or spec.generation
        new_tokens = max_new_tokens or generation.max_new_tokens
        prefixes = _reference_prefixes(backend, records, new_tokens, needs)
        out[set_name] = []
        for index, record in enumerate(records):
            images = tuple(record.get("_images", ()))
            prompt = format_prompt(
                eval_set.prompt or spec.prompt,
                record["question"],
                backend.chat_prompt,
                icl=record.get("icl"),
                images=len(images),
            )
            # Fields starting with "_" are model inputs only (image bytes), not stored.
            stored = {k: v for k, v in record.items() if not k.startswith("_")}
            sample = {"eval_set": set_name, "index": index, **stored, "obs": {}}
            if prefixes is not None:
                sample["obs"]["reference_prefix"] = prefixes[index]
            out[set_name].append(sample)
            extras = needs & ANSWER_EXTRAS.keys()
            for field in (*LOGPROB_FIELDS, "perturbed_answer"):
                if field not in needs and not (field == "answer" and extras):
                    continue
                texts = record[field] if field == "perturbed_answer" else [record[field]]
                for i, text in enumerate(texts):
                    queue.add(
                        ScoreRequest(
                            prompt.context,
                            prompt.answer_prefix + text,
                            prompt.add_special_tokens,
                            vocab_stats=field == "answer" and "answer_vocab_stats" in extras,
                            grad_norm=field == "answer" and "answer_grad_norm" in extras,
                        ),
                        _Pending(sample, field, i if field == "perturbed_answer" else None),
                    )
            if "generation" in needs:
                gen_requests.append(
                    GenerateRequest(
                        prompt.context,
                        new_tokens,
                        stop=tuple(generation.stop),
                        add_special_tokens=prompt.add_special_tokens,
                        images=images,
                    )
                )
                gen_samples.append(sample)
    queue.run(backend, spec.name)
    texts = backend.generate(gen_requests) if gen_requests else []
    for sample, text in zip(gen_samples, texts, strict=True):
        sample["obs"]["generation"] = text.strip()
    if spec.scorers:
        # Judges / reference models score the stored generations (unlearn_bench.judges).
        from unlearn_bench.judges import run_scorers

        run_scorers(spec, backend, list(zip(gen_samples, gen_requests, strict=True)), data_dir)
    return out


def _reference_prefixes(
    backend: Backend, records: list[dict[str, Any]], max_tokens: int, needs: set[str]
) -> list[str] | None:
    """Each answer cut to the generation budget in model tokens (MUSE VerbMem's reference)."""
    if "reference_prefix" not in needs:
        return None
    return truncate_to_tokens(backend, [r["answer"] for r in records], max_tokens)


def _store(item: _Pending, result: TokenScores) -> None:
    obs = item.sample["obs"]
    scores = {"logprobs": result.logprobs, "greedy": result.greedy}
    if item.index is not None:
        obs.setdefault(item.field, []).append(scores)
        return
    obs[item.field] = scores
    if item.field == "answer" and result.vocab_means is not None:
        obs["answer_vocab_stats"] = {"means": result.vocab_means, "stds": result.vocab_stds}
    if item.field == "answer" and result.grad_norm is not None:
        obs["answer_grad_norm"] = {
            "l2": result.grad_norm,
            "mean_param_l2": result.grad_norm_mean_param,
        }


def _metric_value(metric: Any, sample: dict[str, Any], set_name: str) -> float:
    """One sample's value; a metric that cannot compute it names the metric, set and item.

    Metrics raise ValueError on input their definition does not cover (no answer tokens, a NaN
    log-prob, 0/0); stored samples edited or damaged by hand give TypeError or KeyError. Either
    way the run stops with one line, never a traceback or a silently skipped item.
    """
    try:
        return float(metric.fn(sample))
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise UnlearnBenchError(
            f"metric {metric.name} cannot score {set_name} item {sample.get('index')}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def score_samples(spec: TaskSpec, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-sample scores (written into each sample) and their aggregates per eval set."""
    results: dict[str, Any] = {}
    for set_name, set_samples in samples.items():
        for metric_name in spec.evaluation[set_name].metrics:
            metric = METRICS.get(metric_name)
            values = []
            for sample in set_samples:
                value = _metric_value(metric, sample, set_name)
                sample.setdefault("scores", {})[metric_name] = value
                values.append(value)
            entry: dict[str, Any] = {}
            if metric.aggregate == "mean_defined":
                defined = [v for v in values if not math.isnan(v)]
                entry["note"] = f"{len(values) - len(defined)} of {len(values)} undefined"
                values = defined
            mean, stderr = mean_and_stderr(values) if values else (math.nan, math.nan)
            results[f"{set_name}/{metric_name}"] = {
                "value": None if math.isnan(mean) else mean,
                "stderr": None if math.isnan(stderr) else stderr,
                "n": len(values),
                "higher_is_better": metric.higher_is_better,
                "version": metric.version,
                **entry,
                **_scorer_identities(metric.needs, set_samples),
                **_interval_entry(values, metric),
            }
    return results


def _interval_entry(values: list[float], metric: SampleMetric) -> dict[str, Any]:
    """A 95% interval that stays in the metric's range (``metrics.intervals``), with its method."""
    from unlearn_bench.metrics import intervals

    try:
        found = intervals.item_interval(values, metric.bounds, metric.binary)
    except ValueError as exc:  # a value outside the declared range: said, never hidden
        return {"ci_method": f"no interval: {exc}"}
    return {} if found is None else {"ci": list(found[0]), "ci_method": found[1]}


def _scorer_identities(needs: frozenset[str], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Name the judge / reference model behind a metric in its result (``scorer:<slot>``)."""
    found = {}
    for need in sorted(n for n in needs if n.startswith("scorer:")):
        entry = samples[0]["obs"].get(need) if samples else None
        if entry is not None:
            found[need] = entry.get("identity")
    return found
