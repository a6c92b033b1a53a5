"""Per-item gradient norms on SmolLM2-135M: one item per pass against several per pass.

48 real TOFU forget10 gradient requests (evenly spaced over the forget set, built by the real
task code: ``collect_observations`` on ``tofu_forget10``, stopped before anything runs) are
answered four ways on the base model, fp32, CPU:

- ``direct``: one item per pass, every weight gradient formed (the reference);
- ``ghost_item``: one item per pass, norms from activations (``hf_gradnorm``);
- ``ghost_batch_<rows>``: ``hf_gradbatch`` with at most <rows> items per pass, no token cap;
- ``ghost_batch_default``: the HF backend's own plan (its token budget and batch size).

Reported: seconds per configuration, the largest relative difference of each item's two norms
from ``direct``, and the largest per-token log-prob difference from ``direct``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNLEARN_BENCH_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))
MODEL = os.environ.get("BENCH_GRAD_MODEL", "smollm2-135m")  # a tiny model for a smoke run
N_ITEMS = 48
ROWS = (4, 8, 16)


class _Stop(Exception):
    """Raised by the capturing backend once the task code has built its score requests."""


class _Capture:
    """Stands in for a backend until ``logprobs`` is called; keeps the requests."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.capabilities, self.requests = inner, inner.capabilities, []

    def chat_prompt(self, messages: list[Any], add_generation_prompt: bool = True) -> str:
        return self.inner.chat_prompt(messages, add_generation_prompt)

    def logprobs(self, requests: list[Any]) -> list[Any]:
        self.requests = list(requests)
        raise _Stop


def grad_requests(backend: Any) -> list[Any]:
    """The forget set's gradient requests for ``N_ITEMS`` evenly spaced TOFU forget10 items."""
    from unlearn_bench.evaluate import collect_observations, parse_task
    from unlearn_bench.tasks import find_task, load_task_data

    spec = parse_task(find_task("tofu_forget10"))
    records = load_task_data(spec, DATA)[spec.evaluation["forget"].split]
    step = len(records) / N_ITEMS
    chosen = [records[int(i * step)] for i in range(N_ITEMS)]
    capture = _Capture(backend)
    try:
        collect_observations(capture, spec, {"forget": chosen})
    except _Stop:
        pass
    return [r for r in capture.requests if r.grad_norm]


def _timed(fn: Any) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _batched(backend: Any, items: list[Any], flags: list[bool], plan: list[list[int]]) -> list:
    from unlearn_bench.backends import hf_gradbatch

    out: list[Any] = [None] * len(items)
    pad = backend._pad_id()
    for batch in plan:
        scores = hf_gradbatch.score_batch_with_grad(
            backend.model, [items[i] for i in batch], [flags[i] for i in batch], pad, backend.device
        )
        if scores is None:
            raise RuntimeError("the batched path cannot cover this model")
        for i, s in zip(batch, scores, strict=True):
            out[i] = s
    return out


def _agreement(reference: list[Any], got: list[Any]) -> dict[str, float]:
    rel = max(
        abs(getattr(g, k) - getattr(r, k)) / abs(getattr(r, k))
        for r, g in zip(reference, got, strict=True)
        for k in ("grad_norm", "grad_norm_mean_param")
    )
    lp = max(
        abs(a - b)
        for r, g in zip(reference, got, strict=True)
        for a, b in zip(r.logprobs, g.logprobs, strict=True)
    )
    return {"max_rel_norm_diff": rel, "max_logprob_diff_nats": lp}


def run() -> dict:
    import torch

    from unlearn_bench.backends import hf_gradbatch, hf_scoring
    from unlearn_bench.backends.hf import HFBackend

    if not DATA.is_dir():
        raise RuntimeError(f"TOFU data not found at {DATA}; set UNLEARN_BENCH_TOFU_DIR")
    backend = HFBackend(MODEL, progress=False)
    requests = grad_requests(backend)
    items = [backend._encode_request(r) for r in requests]
    flags = [r.vocab_stats for r in requests]
    lengths = [len(c) + len(a) for c, a in items]
    model, device = backend.model, backend.device
    seconds, agreement = {}, {}
    seconds["direct"], reference = _timed(
        lambda: [hf_scoring.score_with_grad(model, it, f, device) for it, f in zip(items, flags)]
    )
    seconds["ghost_item"], got = _timed(
        lambda: [
            hf_scoring.score_with_grad(model, it, f, device, ghost=True)
            for it, f in zip(items, flags)
        ]
    )
    agreement["ghost_item"] = _agreement(reference, got)
    plans = {f"ghost_batch_{n}": hf_gradbatch.plan_grad_batches(items, 10**9, n) for n in ROWS}
    plans["ghost_batch_default"] = hf_gradbatch.plan_grad_batches(
        items, backend.grad_batch_tokens, backend.batch_size
    )
    for name, plan in plans.items():
        seconds[name], got = _timed(lambda plan=plan: _batched(backend, items, flags, plan))
        agreement[name] = _agreement(reference, got)
    per_item = {k: v / len(items) for k, v in seconds.items()}
    best = min((k for k in seconds if k.startswith("ghost_batch")), key=seconds.__getitem__)
    return {
        "model": f"{MODEL} ({backend.dtype}, {device})",
        "items": len(items),
        "tokens_per_item": {"min": min(lengths), "mean": sum(lengths) / len(lengths),
                            "max": max(lengths)},
        "torch_threads": torch.get_num_threads(),
        "default_plan": {"token_budget": backend.grad_batch_tokens,
                         "max_rows": backend.batch_size,
                         "batches": len(plans["ghost_batch_default"])},
        "seconds": seconds,
        "seconds_per_item": per_item,
        "agreement_vs_direct": agreement,
        "summary": (
            f"{len(items)} TOFU forget10 gradient items: direct {seconds['direct']:.1f} s, "
            f"ghost one per pass {seconds['ghost_item']:.1f} s, fastest batched ({best}) "
            f"{seconds[best]:.1f} s, default plan {seconds['ghost_batch_default']:.1f} s"
        ),
    }  # fmt: skip
