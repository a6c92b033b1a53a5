"""Evaluation: ask the backend for the observations the metrics need, then score.

Observations for every eval set of a task are requested in one call per kind, so the backend
can bucket by length across sets and the cache sees each distinct request once. Scoring is a
separate pure step (``score_samples``), which is what ``unlearn-bench score`` re-runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from unlearn_bench.backends.base import (
    Backend,
    GenerateRequest,
    ScoreRequest,
    TokenScores,
    truncate_to_tokens,
)
from unlearn_bench.metrics import METRICS
from unlearn_bench.metrics.stats import mean_and_stderr
from unlearn_bench.prompts import format_prompt
from unlearn_bench.tasks import TaskSpec

SCORED_TOKENS = "answer tokens only (no end-of-turn token), question and answer tokenised apart"
LOGPROB_FIELDS = ("answer", "paraphrased_answer")


@dataclass
class _Pending:
    sample: dict[str, Any]
    field: str
    index: int | None  # position inside perturbed_answer


def needed_observations(metric_names: list[str]) -> set[str]:
    needs: set[str] = set()
    for name in metric_names:
        needs |= METRICS.get(name).needs
    return needs


def collect_observations(
    backend: Backend,
    spec: TaskSpec,
    sets: dict[str, list[dict[str, Any]]],
    max_new_tokens: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Return ``{eval set: [sample]}`` where each sample holds its record and ``obs``."""
    score_requests: list[ScoreRequest] = []
    pending: list[_Pending] = []
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
            for field in (*LOGPROB_FIELDS, "perturbed_answer"):
                if field not in needs:
                    continue
                texts = record[field] if field == "perturbed_answer" else [record[field]]
                for i, text in enumerate(texts):
                    score_requests.append(
                        ScoreRequest(
                            prompt.context, prompt.answer_prefix + text, prompt.add_special_tokens
                        )
                    )
                    pending.append(
                        _Pending(sample, field, i if field == "perturbed_answer" else None)
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
    scores = backend.logprobs(score_requests) if score_requests else []
    for item, result in zip(pending, scores, strict=True):
        _store(item, result)
    texts = backend.generate(gen_requests) if gen_requests else []
    for sample, text in zip(gen_samples, texts, strict=True):
        sample["obs"]["generation"] = text.strip()
    if spec.scorers:
        # Judges / reference models score the stored generations (unlearn_bench.judges).
        from unlearn_bench.judges import run_scorers

        run_scorers(spec, backend, list(zip(gen_samples, gen_requests, strict=True)))
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
    if item.index is None:
        obs[item.field] = result.to_json()
    else:
        obs.setdefault(item.field, []).append(result.to_json())


def score_samples(spec: TaskSpec, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-sample scores (written into each sample) and their aggregates per eval set."""
    results: dict[str, Any] = {}
    for set_name, set_samples in samples.items():
        for metric_name in spec.evaluation[set_name].metrics:
            metric = METRICS.get(metric_name)
            values = []
            for sample in set_samples:
                value = float(metric.fn(sample))
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
                **(_bootstrap_entry(values) if metric.ci and values else {}),
            }
    return results


def _bootstrap_entry(values: list[float]) -> dict[str, Any]:
    """A seeded percentile bootstrap interval of the mean (MUSE reports such intervals)."""
    from unlearn_bench.metrics import bootstrap

    return {"ci": list(bootstrap.bootstrap_mean_ci(values)), "ci_method": bootstrap.describe()}


def _scorer_identities(needs: frozenset[str], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Name the judge / reference model behind a metric in its result (``scorer:<slot>``)."""
    found = {}
    for need in sorted(n for n in needs if n.startswith("scorer:")):
        entry = samples[0]["obs"].get(need) if samples else None
        if entry is not None:
            found[need] = entry.get("identity")
    return found
