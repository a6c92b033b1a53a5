"""Run records -> leaderboard tables (Markdown, CSV). Never edited by hand.

One row per (task, model, label, hyperparameters); when several finished runs share a row the
newest wins, and its run id is printed so every number traces back to its record.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.runs import RunRecord, find_runs


@dataclass
class Row:
    task: str
    run_id: str
    model: str
    label: str
    role: str
    hparams: str
    metrics: dict[str, dict[str, Any]]


def _hparams(header: dict[str, Any]) -> str:
    method = header.get("method")
    if not method:
        finetune = (header.get("config") or {}).get("finetune")
        if header.get("role") in ("target", "retain") and finetune:
            return f"ft lr={finetune['lr']:g} ep={finetune['epochs']:g}"
        return ""
    args = ",".join(f"{k}={v}" for k, v in sorted((method.get("args") or {}).items()))
    steps = (
        f"steps={method['max_steps']}" if method.get("max_steps") else f"ep={method['epochs']:g}"
    )
    return f"lr={method['lr']:g} {steps}" + (f" {args}" if args else "")


def rows_from_records(records: list[RunRecord]) -> list[Row]:
    rows: dict[tuple[str, ...], Row] = {}
    for record in records:
        if not record.is_finished():
            continue
        header = record.header
        model = (header.get("config") or {}).get("model", "?")
        for task, metrics in record.results().items():
            row = Row(
                task,
                header["run_id"],
                model,
                header.get("label", "?"),
                header.get("role", "?"),
                _hparams(header),
                metrics,
            )
            rows[(task, model, row.label, row.hparams)] = row  # records are oldest first
    return list(rows.values())


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if (abs(value) < 1e-3 and value != 0) else f"{value:.4f}"
    return str(value)


def _arrow(higher_is_better: bool | None) -> str:
    return {True: " ↑", False: " ↓"}.get(higher_is_better, "")  # type: ignore[arg-type]


def columns_for(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    derived_first = sorted(rows[0].metrics, key=lambda k: "/" in k) if rows else []
    for row in rows:
        for key in derived_first + list(row.metrics):
            seen.setdefault(key, None)
    return list(seen)


def to_markdown(rows: list[Row]) -> str:
    if not rows:
        return "_no finished runs_\n"
    columns = columns_for(rows)
    directions = {
        c: next((r.metrics[c].get("higher_is_better") for r in rows if c in r.metrics), None)
        for c in columns
    }
    head = [
        "model",
        "method",
        "hyperparameters",
        *(c + _arrow(directions[c]) for c in columns),
        "run",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [
            row.model,
            row.label,
            row.hparams,
            *(_format(row.metrics.get(c, {}).get("value")) for c in columns),
            row.run_id,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    versions = sorted(
        {f"{c} v{r.metrics[c]['version']}" for r in rows for c in columns if c in r.metrics}
    )
    return "\n".join(lines) + "\n\nMetric versions: " + ", ".join(versions) + "\n"


def to_csv(rows: list[Row]) -> str:
    columns = columns_for(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "task",
            "model",
            "method",
            "hyperparameters",
            "run_id",
            *columns,
            *(c + ":stderr" for c in columns),
        ]
    )
    for row in rows:
        values = [row.metrics.get(c, {}).get("value") for c in columns]
        errors = [row.metrics.get(c, {}).get("stderr") for c in columns]
        writer.writerow(
            [
                row.task,
                row.model,
                row.label,
                row.hparams,
                row.run_id,
                *("" if v is None else repr(v) for v in values + errors),
            ]
        )
    return buffer.getvalue()


def write_leaderboards(runs_dir: Path, out_dir: Path, task: str | None = None) -> list[Path]:
    """Regenerate ``out_dir/<task>.{md,csv}`` from every finished run under ``runs_dir``."""
    rows = rows_from_records(find_runs(runs_dir))
    by_task: dict[str, list[Row]] = {}
    for row in rows:
        if task is None or row.task == task:
            by_task.setdefault(row.task, []).append(row)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, task_rows in sorted(by_task.items()):
        md = out_dir / f"{name}.md"
        md.write_text(
            f"# {name}\n\nGenerated by `unlearn-bench leaderboard` from run records.\n\n"
            + to_markdown(task_rows)
        )
        (out_dir / f"{name}.csv").write_text(to_csv(task_rows))
        written += [md, out_dir / f"{name}.csv"]
    return written


def stage_seconds_table(seconds: dict[str, float]) -> str:
    lines = ["| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {took:.1f} |" for name, took in seconds.items()]
    lines.append(f"| total | {sum(seconds.values()):.1f} |")
    return "\n".join(lines) + "\n"


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
