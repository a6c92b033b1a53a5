"""Numeric settings that decide the last bits of every number, pinned so machines agree.

fp32 training on CPU is deterministic on one machine but not across machines of one kind: torch's
ATen kernels (softmax, norms, reductions, the optimiser's element-wise maths) are compiled once
per instruction set and dispatched by the CPU they find. Measured here (2026-12-05, AMD EPYC with
AVX-512, torch 2.13.0, a 3-layer 576-wide Llama, 8 AdamW steps): 1 and 2 torch threads gave
bit-identical losses and weights, ``MKL_CBWR=AVX2`` alone changed nothing, and ATen's AVX2
kernels instead of its AVX-512 ones changed the first step's loss in the last bits and every
weight after 8 steps. So the *portable* profile, the default, pins the kernels every x86-64
machine since 2013 has:

- ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised kernels;
- ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility (its GEMM code path);
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's kernels.

These are read once, when torch first dispatches, so ``pin()`` must run before torch is imported
(the CLI calls it first thing). ``UNLEARN_BENCH_NUMERICS=native`` keeps the CPU's own kernels.
Whatever happened is recorded by ``identity()`` in every run header and checkpoint recipe, so a
difference between two machines can be explained (``unlearn-bench compare-runs``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
MODE_VARIABLE = "UNLEARN_BENCH_NUMERICS"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pin(environ: MutableMapping[str, str] | None = None) -> str:
    """Set the portable profile's variables (those the user has not set); return the mode.

    Does nothing on non-x86 machines or without AVX2, and under ``UNLEARN_BENCH_NUMERICS=native``.
    """
    env = os.environ if environ is None else environ
    mode = env.get(MODE_VARIABLE, "portable")
    if mode not in {"portable", "native"}:
        from unlearn_bench.errors import UnlearnBenchError

        raise UnlearnBenchError(f"{MODE_VARIABLE} must be 'portable' or 'native', not {mode!r}")
    if mode == "native" or platform.machine().lower() not in {"x86_64", "amd64"}:
        return "native"
    if "avx2" not in _cpu_flags():
        return "native"
    for key, value in PORTABLE_ENV.items():
        env.setdefault(key, value)
    return "portable"


def identity() -> dict[str, Any]:
    """What decides the numbers on this machine, as torch sees it now (imports torch)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pinned = {key: os.environ.get(key) for key in PORTABLE_ENV}
    portable = capability == "AVX2" and pinned == PORTABLE_ENV
    return {
        "profile": "portable-avx2" if portable else f"native-{capability.lower()}",
        "cpu_capability": capability,
        "env": pinned,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cpu": _cpu_model(),
        "machine": platform.machine(),
    }


def profile() -> str:
    """The part of ``identity()`` that changes weights: it goes into every checkpoint key."""
    return str(identity()["profile"])
