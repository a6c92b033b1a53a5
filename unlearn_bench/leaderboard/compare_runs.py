"""Two run records side by side: which numbers differ, and what about the runs could explain it.

A run header records what made its numbers: the code version, package versions, the platform
and the numeric profile (instruction set torch dispatched to, the pinned kernels, thread
count, deterministic-algorithms setting, CPU). When two runs of one protocol disagree, the first
question is which of these differ; ``explain`` answers it, next to the metrics that moved.
Run groups are paired by label (target, retain, each method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.runs import RunRecord

# Header fields that describe how the numbers were made rather than what was asked for.
ENVIRONMENT_FIELDS = ("git_commit", "packages", "platform", "numerics")
# Config fields that name where things go, not what is computed.
VOLATILE_CONFIG = {"run_id", "runs_dir", "leaderboards_dir"}


@dataclass(frozen=True)
class Difference:
    """One field or metric whose value differs between run A and run B."""

    where: str
    a: Any
    b: Any


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    return [
        Difference(key, a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def environment_differences(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    """Differences in the header fields that say how the numbers were made, and in the config."""
    env_a = _flatten({k: a.get(k) for k in ENVIRONMENT_FIELDS}, "")
    env_b = _flatten({k: b.get(k) for k in ENVIRONMENT_FIELDS}, "")
    config_a = {k: v for k, v in (a.get("config") or {}).items() if k not in VOLATILE_CONFIG}
    config_b = {k: v for k, v in (b.get("config") or {}).items() if k not in VOLATILE_CONFIG}
    return _diff(env_a, env_b) + _diff(_flatten(config_a, "config"), _flatten(config_b, "config"))


def metric_values(results: dict[str, Any]) -> dict[str, float]:
    """``{task/metric: value}`` for every numeric metric in a results.json."""
    out = {}
    for task, metrics in results.items():
        for name, entry in metrics.items():
            value = entry.get("value") if isinstance(entry, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{task}/{name}"] = float(value)
    return out


def metric_differences(a: dict[str, Any], b: dict[str, Any], tolerance: float) -> list[Difference]:
    """Metrics present in only one run, or whose values differ by more than ``tolerance``."""
    va, vb = metric_values(a), metric_values(b)
    out = []
    for key in sorted(set(va) | set(vb)):
        x, y = va.get(key), vb.get(key)
        if x is None or y is None:
            out.append(Difference(key, x, y))
        elif not (math.isnan(x) and math.isnan(y)) and not abs(x - y) <= tolerance:
            out.append(Difference(key, x, y))
    return out


def _runs_in(path: Path) -> dict[str, RunRecord]:
    record = RunRecord(path)
    if record.exists():
        return {"": record}
    found = {p.parent.name: RunRecord(p.parent) for p in sorted(path.glob("*/header.json"))}
    if not found:
        raise UnlearnBenchError(f"{path} is neither a run record nor a run group")
    return found


def pair_runs(a: Path, b: Path) -> list[tuple[str, RunRecord, RunRecord]]:
    """Pair two run folders, or the runs of two groups by label (only labels both have)."""
    runs_a, runs_b = _runs_in(a), _runs_in(b)
    if set(runs_a) == {""} or set(runs_b) == {""}:
        return [("", next(iter(runs_a.values())), next(iter(runs_b.values())))]
    common = sorted(set(runs_a) & set(runs_b))
    if not common:
        raise UnlearnBenchError(f"{a} and {b} share no run label")
    return [(label, runs_a[label], runs_b[label]) for label in common]


def _show(value: Any) -> str:
    return repr(value)  # full precision: the differences this explains are often in the last bits


def explain(a: Path, b: Path, tolerance: float = 0.0) -> tuple[str, bool]:
    """A readable report, and whether any metric differs beyond ``tolerance``."""
    lines, any_metric = [], False
    for label, ra, rb in pair_runs(a, b):
        metrics = []
        if (
            ra.root.joinpath("results.json").is_file()
            and rb.root.joinpath("results.json").is_file()
        ):
            metrics = metric_differences(ra.results(), rb.results(), tolerance)
        any_metric |= bool(metrics)
        env = environment_differences(ra.header, rb.header)
        lines.append(f"== {label or ra.root.name}: {len(metrics)} metric(s) differ")
        lines += [f"  {d.where}: {_show(d.a)} -> {_show(d.b)}" for d in metrics]
        if env:
            lines.append("  what differs in how the numbers were made:")
            lines += [f"    {d.where}: {_show(d.a)} -> {_show(d.b)}" for d in env]
        elif metrics:
            lines.append("  no recorded setting differs (same code, packages and numerics)")
    return "\n".join(lines), any_metric
