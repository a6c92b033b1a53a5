"""Seconds to evaluate SmolLM2-135M on TOFU's forget01 and forget10 suites on this machine.

A suite is every eval set of ``tasks/tofu/tofu_forgetXX.yaml``: forget and holdout (40 or 400
items each, with Min-K%++ statistics and a per-item gradient), retain (400), real authors (100)
and world facts (117), greedy generation up to 200 new tokens for ROUGE. Real data from
``../shared/data/tofu`` (or ``$UNLEARN_BENCH_TOFU_DIR``); the base model, no finetuning; no
response cache.

The full forget10 suite takes far longer on 2 CPU cores than a benchmark should, so by default
each eval set is evaluated on an evenly spaced sample of items through the real pipeline
(``collect_observations`` on the HF backend), timing each kind of work, and a suite's seconds
are the measured per-item seconds times the set sizes: an **estimate**, and labelled so.
``UNLEARN_BENCH_TOFU_FULL=1`` evaluates the complete suites instead (measured, about an hour).
Log-probs are timed with and without the shared-prefix path, on the same requests, twice in
alternation to damp the noise of a shared machine; the faster of each pair counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNLEARN_BENCH_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))
SAMPLE = {"forget": 8, "holdout": 8, "retain": 8, "real_authors": 16, "world_facts": 16}


class TimedBackend:
    """Wraps the HF backend: times generation, gradient requests and plain log-prob requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.seconds = {"logprobs": 0.0, "grad": 0.0, "generate": 0.0}
        self.plain_requests: list[Any] = []
        self.new_tokens = 0

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def chat_prompt(self, messages: list[Any], add_generation_prompt: bool = True) -> str:
        return self.inner.chat_prompt(messages, add_generation_prompt)

    def logprobs(self, requests: list[Any]) -> list[Any]:
        grad = [i for i, r in enumerate(requests) if r.grad_norm]
        rest = [i for i, r in enumerate(requests) if not r.grad_norm]
        out: list[Any] = [None] * len(requests)
        for kind, indices in (("grad", grad), ("logprobs", rest)):
            start = time.perf_counter()
            scores = self.inner.logprobs([requests[i] for i in indices]) if indices else []
            self.seconds[kind] += time.perf_counter() - start
            for i, s in zip(indices, scores, strict=True):
                out[i] = s
        self.plain_requests += [requests[i] for i in rest]
        return out

    def generate(self, requests: list[Any]) -> list[str]:
        start = time.perf_counter()
        texts = self.inner.generate(requests)
        self.seconds["generate"] += time.perf_counter() - start
        tokenizer = self.inner.tokenizer
        self.new_tokens += sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
        return texts


def _spread(records: list[dict], n: int | None) -> list[dict]:
    """``n`` evenly spaced records (all of them for None)."""
    if n is None or n >= len(records):
        return records
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def _time_logprobs(backend: Any, requests: list[Any], share: bool) -> float:
    backend.share_prefix = share
    start = time.perf_counter()
    backend.logprobs(requests)
    return time.perf_counter() - start


def measure_set(backend: Any, spec: Any, name: str, records: list[dict]) -> dict[str, Any]:
    """Evaluate one eval set on ``records``; seconds per kind of work, per item."""
    from unlearn_bench.evaluate import collect_observations

    timed = TimedBackend(backend)
    backend.share_prefix = True
    collect_observations(timed, spec, {name: records})
    plain, shared = [], []
    if timed.plain_requests:
        for _ in range(2):
            plain.append(_time_logprobs(backend, timed.plain_requests, False))
            shared.append(_time_logprobs(backend, timed.plain_requests, True))
    backend.share_prefix = True
    n = len(records)
    return {
        "items": n,
        "logprob_requests": len(timed.plain_requests),
        "s_per_item": {
            "logprobs_shared": min(shared, default=0.0) / n,
            "logprobs_plain": min(plain, default=0.0) / n,
            "grad": timed.seconds["grad"] / n,
            "generate": timed.seconds["generate"] / n,
        },
        "new_tokens_per_item": timed.new_tokens / n,
    }


def suite_seconds(per_set: dict[str, dict], sizes: dict[str, int], path: str) -> float:
    """Seconds for a suite from per-item costs; ``path``: "logprobs_shared" or "_plain"."""
    total = 0.0
    for name, size in sizes.items():
        cost = per_set[name]["s_per_item"]
        total += size * (cost[path] + cost["grad"] + cost["generate"])
    return total


def run() -> dict:
    import torch

    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.tasks import find_task, load_task_data

    if not DATA.is_dir():
        raise RuntimeError(f"TOFU data not found at {DATA}; set UNLEARN_BENCH_TOFU_DIR")
    full = os.environ.get("UNLEARN_BENCH_TOFU_FULL") == "1"
    backend = HFBackend("smollm2-135m", progress=False, batch_size=16)
    specs = {f: parse_task(find_task(f"tofu_{f}")) for f in ("forget01", "forget10")}
    data = {f: load_task_data(s, DATA) for f, s in specs.items()}
    sizes = {
        f: {n: len(data[f][e.split]) for n, e in s.evaluation.items()} for f, s in specs.items()
    }
    result: dict[str, Any] = {
        "mode": "full" if full else "sampled",
        "torch_threads": torch.get_num_threads(),
    }
    if full:
        for f, spec in specs.items():
            per_set = {
                n: measure_set(backend, spec, n, data[f][e.split])
                for n, e in spec.evaluation.items()
            }
            result[f"{f}_seconds"] = round(suite_seconds(per_set, sizes[f], "logprobs_shared"), 1)
            result[f"{f}_sets"] = per_set
    else:
        spec = specs["forget10"]
        per_set = {
            n: measure_set(backend, spec, n, _spread(data["forget10"][e.split], SAMPLE[n]))
            for n, e in spec.evaluation.items()
        }
        result["sets"] = per_set
        for f in specs:
            for path in ("logprobs_shared", "logprobs_plain"):
                key = f"{f}_seconds_est" + (
                    "" if path == "logprobs_shared" else "_no_prefix_sharing"
                )
                result[key] = round(suite_seconds(per_set, sizes[f], path), 1)
    result["suite_sizes"] = sizes
    result["summary"] = _summary(result)
    return result


def _summary(result: dict[str, Any]) -> str:
    if result["mode"] == "full":
        return (
            f"SmolLM2-135M TOFU eval, measured: forget01 suite {result['forget01_seconds']:.0f} s, "
            f"forget10 suite {result['forget10_seconds']:.0f} s"
        )
    sets = result["sets"]
    lp = sum(s["s_per_item"]["logprobs_plain"] for s in sets.values())
    sh = sum(s["s_per_item"]["logprobs_shared"] for s in sets.values())
    return (
        f"SmolLM2-135M TOFU eval, estimated from sampled per-item costs: forget01 suite "
        f"{result['forget01_seconds_est']:.0f} s, forget10 suite "
        f"{result['forget10_seconds_est']:.0f} s (without prefix sharing "
        f"{result['forget01_seconds_est_no_prefix_sharing']:.0f} / "
        f"{result['forget10_seconds_est_no_prefix_sharing']:.0f} s; log-prob speed-up "
        f"{lp / sh:.2f}x)"
    )
