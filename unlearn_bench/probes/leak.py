"""Sampled decoding, Leak@k: n sampled generations per prompt, expected best leak over k.

Sampling can surface what greedy decoding hides (Leak@k, arXiv 2511.04934). Each prompt gets
``n`` samples (temperature and top-p from ``probe_settings``), seeded per prompt so the same
prompt always draws the same samples whatever else is evaluated. Each sample is scored with the
task's leak metric (``probes.leak_metric``, e.g. ROUGE-L recall); Leak@k is the mean over
prompts of the expected maximum score over k samples drawn without replacement from the n,
computed without bias as the pass@k estimator generalised to real scores (Chen et al. 2021):
with scores sorted ascending s_1 <= ... <= s_n, E[max] = sum_{i>=k} C(i-1, k-1) / C(n, k) s_i.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.probes.base import PROBES, Probe, ProbeContext, Record

if TYPE_CHECKING:
    from unlearn_bench.backends.base import Backend


def expected_max_at_k(scores: list[float], k: int) -> float:
    """Unbiased E[max of k of the n scores, drawn without replacement] (formula above)."""
    n = len(scores)
    if not 1 <= k <= n:
        raise UnlearnBenchError(f"Leak@k needs 1 <= k <= n, got k={k}, n={n}")
    ordered = sorted(scores)
    total = math.comb(n, k)
    return sum(math.comb(i - 1, k - 1) * ordered[i - 1] for i in range(k, n + 1)) / total


def ks_for(n: int) -> list[int]:
    """The reported k values: 1, 2, 4, ... up to n, and n itself."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks if ks[-1] == n else [*ks, n]


def prompt_seed(run_seed: int, prompt: str) -> int:
    """A seed that depends only on the run's seed and the prompt text."""
    digest = hashlib.sha256(f"{run_seed}\x00{prompt}".encode()).hexdigest()
    return int(digest[:8], 16)


@PROBES.register("leak")
class Leak(Probe):
    """``leak-N``: N sampled generations per prompt; Leak@k for k = 1, 2, 4 ... N."""

    family = "leak"
    needs_arg = True

    def check(self, ctx: ProbeContext) -> None:
        """A leak metric that scores generations; N >= 1; every requested k <= N."""
        super().check(ctx)
        from unlearn_bench.metrics import METRICS

        name = ctx.spec.probes.leak_metric
        if not name:
            raise UnlearnBenchError(f"task {ctx.spec.name}: probe leak needs probes.leak_metric")
        needs = METRICS.get(name).needs
        if "generation" not in needs:
            raise UnlearnBenchError(f"probes.leak_metric {name!r} does not score a generation")
        if needs - {"generation"}:
            # Judges and reference prefixes are computed per greedy generation, not per sample.
            raise UnlearnBenchError(
                f"probes.leak_metric {name!r} needs {sorted(needs - {'generation'})}: Leak@k "
                "supports metrics of the generation alone"
            )
        if not self.arg or self.arg < 1:
            raise UnlearnBenchError("probe leak needs n >= 1 samples, e.g. leak-8")
        for k in ctx.settings.leak_k or []:
            if not 1 <= k <= self.arg:
                raise UnlearnBenchError(f"Leak@k: k={k} is outside 1..n={self.arg}")

    def ks(self, ctx: ProbeContext) -> list[int]:
        """The k values reported."""
        assert self.arg is not None
        return sorted(set(ctx.settings.leak_k or ks_for(self.arg)))

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """Sampling settings, k values and the leak metric."""
        s = ctx.settings
        return {
            **super().describe(ctx), "n": self.arg, "k": self.ks(ctx),
            "temperature": s.temperature, "top_p": s.top_p,
            "leak_metric": ctx.spec.probes.leak_metric,
            "seeding": "sha256(run seed, prompt) + batch number; batches of eval.batch_size",
            "batch_size": ctx.config.eval.batch_size,
            "response_cache": "bypassed: the n requests of a prompt are identical",
        }  # fmt: skip

    def open_backend(self, ctx: ProbeContext, model_path: str) -> Backend:
        """The backend without the response cache (n identical requests must differ)."""
        import dataclasses

        from unlearn_bench.runner import make_backend

        return make_backend(dataclasses.replace(ctx.config, cache=False), model_path)  # type: ignore[no-any-return]

    def evaluate(
        self, ctx: ProbeContext, backend: Backend, sets: dict[str, list[Record]]
    ) -> tuple[list[Record], dict[str, Any]]:
        """Sample, score every sample, and aggregate Leak@k per eval set."""
        samples = sample_generations(ctx, backend, sets, int(self.arg or 0))
        return samples, leak_results(ctx, samples, self.ks(ctx))


def sample_generations(
    ctx: ProbeContext, backend: Backend, sets: dict[str, list[Record]], n: int
) -> list[Record]:
    """Draw n generations per record, each scored with the leak metric (``scores.leak``)."""
    from unlearn_bench.backends.base import GenerateRequest
    from unlearn_bench.metrics import METRICS
    from unlearn_bench.prompts import format_prompt

    spec, s = ctx.spec, ctx.settings
    metric = METRICS.get(str(spec.probes.leak_metric))
    requests: list[GenerateRequest] = []
    samples: list[Record] = []
    for set_name, records in sets.items():
        eval_set = spec.evaluation[set_name]
        generation = eval_set.generation or spec.generation
        tokens = ctx.config.eval.max_new_tokens or generation.max_new_tokens
        for index, record in enumerate(records):
            prompt = format_prompt(eval_set.prompt or spec.prompt, record["question"],
                                   backend.chat_prompt, icl=record.get("icl"))  # fmt: skip
            seed = prompt_seed(ctx.config.seed, prompt.context)
            # The backend seeds once per batch: each batch of a prompt's samples gets its own
            # seed (seed + batch number), so no two batches repeat the same draws.
            width = ctx.config.eval.batch_size
            requests += [
                GenerateRequest(
                    prompt.context, tokens, temperature=s.temperature, top_p=s.top_p,
                    seed=seed + j // width, stop=tuple(generation.stop),
                    add_special_tokens=prompt.add_special_tokens,
                )
                for j in range(n)
            ]  # fmt: skip
            stored = {k: v for k, v in record.items() if not k.startswith("_")}
            samples.append({"eval_set": set_name, "index": index, **stored, "seed": seed})
    texts = backend.generate(requests) if requests else []
    for i, sample in enumerate(samples):
        drawn = [t.strip() for t in texts[i * n : (i + 1) * n]]
        sample["obs"] = {"samples": drawn}
        sample["scores"] = {
            "leak": [float(metric.fn({**sample, "obs": {"generation": t}})) for t in drawn]
        }
    return samples


def leak_results(ctx: ProbeContext, samples: list[Record], ks: list[int]) -> dict[str, Any]:
    """``<set>/leak@<k>_<metric>``: mean over prompts of the unbiased expected max over k."""
    from unlearn_bench.metrics import METRICS
    from unlearn_bench.metrics.stats import mean_and_stderr

    name = str(ctx.spec.probes.leak_metric)
    metric = METRICS.get(name)
    results: dict[str, Any] = {}
    for set_name in dict.fromkeys(s["eval_set"] for s in samples):
        scores = [s["scores"]["leak"] for s in samples if s["eval_set"] == set_name]
        for k in ks:
            per_prompt = [expected_max_at_k(v, k) for v in scores]
            for sample, value in zip(
                [s for s in samples if s["eval_set"] == set_name], per_prompt, strict=True
            ):
                sample["scores"][f"leak@{k}"] = value
            mean, stderr = mean_and_stderr(per_prompt)
            results[f"{set_name}/leak@{k}_{name}"] = {
                "value": mean, "stderr": None if math.isnan(stderr) else stderr,
                "n": len(per_prompt), "higher_is_better": metric.higher_is_better,
                "version": metric.version, "estimator": "unbiased expected max over k of n",
            }  # fmt: skip
    return results
