"""What the viewer shows, as plain JSON-able dicts built from run records.

The site is generated from run records only, like the leaderboards: the same rows
(``leaderboard.rows``), the metric descriptions of the registries, and each run's header,
results and samples. Per-item observations such as token log-probabilities are left out of
the site (they are large and unreadable); the generation and the per-item scores are kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.rows import Cell, Row, columns_for, method_text
from unlearn_bench.runs import RunRecord

# Text fields of a sample worth reading beside the generation, in display order.
SAMPLE_TEXT_FIELDS = ("question", "answer", "paraphrased_answer")


def describe_metric(key: str) -> str:
    """One-line definition of a leaderboard column (``set/metric`` or a derived metric)."""
    from unlearn_bench.metrics import DERIVED_METRICS, METRICS

    name = key.split("@v")[0]
    for registry, lookup in ((DERIVED_METRICS, name), (METRICS, name.rsplit("/", 1)[-1])):
        if lookup in registry.names():
            return str(registry.get(lookup).description)
    if name.startswith("utility/"):
        _, task, metric = (name.split("/", 2) + ["", ""])[:3]
        return f"lm-evaluation-harness task {task}, metric {metric}, on the same weights"
    return "no registered definition (recorded by an importer or an older version)"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not math.isnan(float(value)):
        return float(value)
    return None


def _cell(cell: Cell) -> dict[str, Any]:
    return {
        "value": _number(cell.value),
        "stderr": _number(cell.stderr),
        "n": cell.n,
        "ci": list(cell.ci) if cell.ci else None,
        "note": cell.note,
    }


def best_cells(
    rows: list[Row], key: str, higher_is_better: bool | None, skip: frozenset[int] = frozenset()
) -> list[int]:
    """Indices of the rows holding the best value of a column (none when no direction).

    A collapsed row is never best: its numbers describe a broken model (train/collapse.py).
    Rows in ``skip`` are not candidates either (a model under a robustness probe).
    """
    if higher_is_better is None:
        return []
    values = [
        (i, _number(r.metrics[key].value))
        for i, r in enumerate(rows)
        if key in r.metrics and not r.collapsed and i not in skip
    ]
    present = [(i, v) for i, v in values if v is not None]
    if not present:
        return []
    best = (max if higher_is_better else min)(v for _, v in present)
    return [i for i, v in present if v == best]


def board(task: str, rows: list[Row], probes: dict[str, str] | None = None) -> dict[str, Any]:
    """One sortable leaderboard: columns with direction and definition, rows with cells.

    ``probes`` maps the run ids of probe records (``npo@int4``) to their probe's name: such a
    row is the model under an attack, shown for reading but never marked best, since a best
    cell there would credit a method with a number no unlearned model gives unattacked.
    """
    probes = probes or {}
    probed = {i: probes.get(r.run_ids[0]) for i, r in enumerate(rows)}
    skip = frozenset(i for i, name in probed.items() if name)
    columns = []
    for col in columns_for(rows):
        columns.append(
            {
                "key": col.key,
                "version": col.version,
                "higher_is_better": col.higher_is_better,
                "description": describe_metric(col.key),
                "best_rows": best_cells(rows, col.key, col.higher_is_better, skip),
            }
        )
    return {
        "task": task,
        "columns": columns,
        "rows": [
            {
                "label": method_text(r),
                "collapsed": r.collapsed,
                "role": r.role + (f" under probe {probed[i]}" if probed[i] else ""),
                "model": r.model,
                "hparams": r.hparams,
                "run_ids": r.run_ids,
                "seeds": r.seeds,
                "cells": {k: _cell(c) for k, c in r.metrics.items()},
            }
            for i, r in enumerate(rows)
        ],
    }


def _sample(sample: dict[str, Any]) -> dict[str, Any]:
    obs = sample.get("obs") or {}
    out: dict[str, Any] = {"eval_set": sample.get("eval_set"), "index": sample.get("index")}
    for name in SAMPLE_TEXT_FIELDS:
        if isinstance(sample.get(name), str):
            out[name] = sample[name]
    if isinstance(obs.get("generation"), str):
        out["generation"] = obs["generation"]
    out["scores"] = {k: _number(v) for k, v in (sample.get("scores") or {}).items()}
    return out


def group_of(record: RunRecord, runs_dir: Path) -> str:
    """The run group (the folder holding a protocol's target, retain and unlearned runs)."""
    header = record.header
    if header.get("group"):
        return str(header["group"])
    parent = record.root.parent
    return "." if parent == runs_dir else str(parent.relative_to(runs_dir))


def run_page(record: RunRecord, runs_dir: Path) -> dict[str, Any]:
    """Everything one run page shows: header, results per task, samples per task."""
    header = record.header
    results = record.results() if (record.root / "results.json").is_file() else {}
    tasks = sorted({*results, *(p.stem for p in (record.root / "samples").glob("*.jsonl"))})
    return {
        "run_id": record.run_id,
        "group": group_of(record, runs_dir),
        "header": header,
        "results": results,
        "samples": {t: [_sample(s) for s in record.read_samples(t)] for t in tasks},
    }


def run_summary(record: RunRecord, runs_dir: Path, file: str) -> dict[str, Any]:
    """The run list's line for one run (the page itself is loaded on demand)."""
    header = record.header
    return {
        "run_id": record.run_id,
        "group": group_of(record, runs_dir),
        "label": header.get("label", record.root.name),
        "role": header.get("role", "?"),
        "status": header.get("status", "?"),
        "task": (header.get("task") or {}).get("name", "?"),
        "model": (header.get("config") or {}).get("model", "?"),
        "created": header.get("created", ""),
        "file": file,
    }


def readable_records(runs_dir: Path) -> list[RunRecord]:
    """Every run record under ``runs_dir``; none is a one-line error."""
    from unlearn_bench.runs import find_runs

    if not runs_dir.is_dir():
        raise UnlearnBenchError(f"{runs_dir} is not a folder")
    records = find_runs(runs_dir)
    if not records:
        raise UnlearnBenchError(f"no run records (header.json) under {runs_dir}")
    return records
