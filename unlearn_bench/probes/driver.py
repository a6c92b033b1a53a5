"""Probe the models of a finished run group: one ordinary run record per (model, probe)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import read_json
from unlearn_bench.probes.base import Probe, ProbeContext, make_probe
from unlearn_bench.probes.recovery import recovery_entries
from unlearn_bench.runs import RunRecord

Echo = Callable[[str], None]
PROBED_ROLES = ("base", "target", "unlearned")


def prepare(config: RunConfig, names: list[str]) -> tuple[ProbeContext, list[Probe]]:
    """Parse and check every probe against the task before any model is loaded."""
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.metrics import METRICS
    from unlearn_bench.tasks import find_task, load_task_data

    spec = parse_task(find_task(config.task))
    # What the names and the task file alone decide is refused before the data is loaded.
    if names and not spec.probes.metric:
        raise UnlearnBenchError(f"task {spec.name}: probes need probes.metric in the task file")
    if spec.probes.metric:
        METRICS.get(spec.probes.metric)
    probes = [make_probe(n) for n in names]
    labels = [p.label for p in probes]
    if len(set(labels)) != len(labels):
        raise UnlearnBenchError(f"a probe is listed twice: {labels}")
    ctx = ProbeContext(config, spec, load_task_data(spec, config.data_dir))
    for probe in probes:
        probe.check(ctx)
    return ctx, probes


def subjects_of(group_dir: Path) -> list[RunRecord]:
    """The group's finished, unprobed target/base and unlearned records, target first."""
    records = [RunRecord(p.parent) for p in sorted(group_dir.glob("*/header.json"))]
    found = [
        r for r in records
        if r.is_finished() and "probe" not in r.header and r.header.get("role") in PROBED_ROLES
    ]  # fmt: skip
    return sorted(found, key=lambda r: r.header["role"] == "unlearned")


def probe_group(
    group_dir: Path, names: list[str], config: RunConfig | None = None, echo: Echo = print
) -> list[RunRecord]:
    """Run every probe on every model of the group; finished probe records are kept."""
    group_file = group_dir / "GROUP.json"
    if not group_file.is_file():
        raise UnlearnBenchError(f"{group_dir} is not a run group (no GROUP.json)")
    if config is None:
        saved = read_json(group_file).get("config")
        if not isinstance(saved, dict):
            raise UnlearnBenchError(f"{group_file} holds no run configuration")
        config = RunConfig.from_dict(saved)
    ctx, probes = prepare(config, names)
    subjects = subjects_of(group_dir)
    if not subjects:
        raise UnlearnBenchError(f"{group_dir} holds no finished target or unlearned run")
    from unlearn_bench.runner import group_lock

    out = []
    with group_lock(group_dir, group_dir.name):  # probe records are written into the group
        for probe in probes:
            done: dict[str, RunRecord] = {}
            for subject in subjects:
                start = time.perf_counter()
                record = probe_one(ctx, probe, subject, done.get("target"))
                role = subject.header["role"]
                done[role if role != "base" else "target"] = record
                echo(f"    {record.root.name}: {time.perf_counter() - start:.1f} s")
                out.append(record)
    return out


def probe_one(
    ctx: ProbeContext, probe: Probe, subject: RunRecord, target: RunRecord | None
) -> RunRecord:
    """Evaluate one model under one probe and write its run record (skipped when finished)."""
    header = subject.header
    label = f"{header['label']}@{probe.label}"
    root = subject.root.parent / label
    if RunRecord(root).is_finished():
        return RunRecord(root)
    describe = {**probe.describe(ctx), "of": header["label"]}
    fingerprint = hashlib.sha256(
        json.dumps([header.get("fingerprint"), describe], sort_keys=True).encode()
    ).hexdigest()[:16]
    fields = {key: header.get(key) for key in ("group", "role", "method", "task", "config", "seed")}
    fields |= {"label": label, "fingerprint": fingerprint, "probe": describe}
    record = RunRecord.open_or_create(root, f"{header.get('group')}/{label}", fields)
    start = time.perf_counter()
    model_path = probe.model_path(ctx, header["model_path"])
    sets = probe.eval_sets(ctx)
    backend = probe.open_backend(ctx, model_path)
    try:
        samples, set_results = probe.evaluate(ctx, backend, sets)
        identity = backend.identity()
    finally:
        backend.close()
    name = ctx.spec.name
    record.write_samples(name, samples)
    record.update_header(backend=identity, model_path=model_path, set_results=set_results)
    record.mark_stage("evaluate", time.perf_counter() - start)
    extra: dict[str, Any] = {}
    if header["role"] == "unlearned" and target is not None:
        metric, score = _scored(ctx, probe)
        extra = recovery_entries(
            metric, score, samples, subject.read_samples(name), target.read_samples(name)
        )
    record.write_results({name: {**set_results, **extra}})
    record.finish()
    return record


def _scored(ctx: ProbeContext, probe: Probe) -> tuple[str, str]:
    """(metric before, per-sample score after): the leak probe compares Leak@n with greedy."""
    from unlearn_bench.probes.leak import Leak

    if isinstance(probe, Leak):
        return str(ctx.spec.probes.leak_metric), f"leak@{max(probe.ks(ctx))}"
    metric = str(ctx.spec.probes.metric)
    return metric, metric


def with_probes(config: RunConfig, names: list[str]) -> RunConfig:
    """``config`` with its probe list replaced."""
    return dataclasses.replace(config, probes=list(names))
