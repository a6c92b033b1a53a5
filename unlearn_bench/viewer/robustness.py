"""The robustness tables of probe records as viewer leaderboards (same numbers as the md).

``leaderboard.robustness`` builds one table per task and group from probe run records: per
model and probe, the task's forget metric under the probe and its recovery. Here each table
becomes a board in the shape ``viewer.data.board`` gives the JS (columns with direction,
definition and best rows; rows with cells), so the page sorts and marks it like any other.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.runs import RunRecord

RECOVERY = (
    "share of the unlearned -> target gap the probe closes, (unlearned under probe - "
    "unlearned) / (target under probe - unlearned) on the same items; 0 = forgetting survives"
)


def _column(key: str, description: str, best: list[int]) -> dict[str, Any]:
    # Both columns are lower-is-better: the forget metric measures leak (tasks.ProbeSpec), and
    # recovery is the share of the forgetting undone.
    return {"key": key, "version": None, "higher_is_better": False,
            "description": description, "best_rows": best}  # fmt: skip


def _cell(value: Any) -> dict[str, Any]:
    number = float(value) if isinstance(value, int | float) else None
    return {"value": number, "stderr": None, "n": None, "ci": None, "note": None}


def _best(values: list[float | None], candidates: list[bool]) -> list[int]:
    present = [(i, v) for i, v in enumerate(values) if v is not None and candidates[i]]
    low = min((v for _, v in present), default=None)
    return [i for i, v in present if v == low]


def robustness_boards(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One board per (task, group) with probe records; the target is shown, never best."""
    from unlearn_bench.leaderboard.robustness import robustness_tables

    unprobed = {
        (r.header["task"]["name"], str(r.header.get("group")), r.header.get("label")): r
        for r in records
        if r.is_finished() and not r.header.get("probe")
    }
    boards = []
    for (task, group), table in sorted(robustness_tables(records).items()):
        labels = list(table["rows"])
        runs = [unprobed.get((task, group, label)) for label in labels]
        roles = [str(r.header.get("role", "?")) if r else "?" for r in runs]
        candidates = [role != "target" for role in roles]  # the target is the reference
        metric, columns = table["metric"], []
        cells: list[dict[str, Any]] = [{} for _ in labels]
        for probe in table["probes"]:
            leak = probe.startswith("leak")
            what = f"Leak@N of the leak metric under {probe}" if leak else f"{metric} under {probe}"
            for part, index, text in (
                (f"{probe}: {'leak' if leak else metric}", 0, what + " (higher = more leak)"),
                (f"{probe}: recovery", 1, f"{probe} recovery: {RECOVERY}"),
            ):
                values = [table["rows"][label].get(probe, (None, None))[index] for label in labels]
                columns.append(_column(part, text, _best(values, candidates)))
                for row_cells, value in zip(cells, values, strict=True):
                    row_cells[part] = _cell(value)
        rows = [
            {"label": label, "collapsed": None, "role": role,
             "model": str((r.header.get("config") or {}).get("model", "?")) if r else "?",
             "hparams": "", "run_ids": [r.run_id] if r else [], "seeds": [], "cells": row_cells}
            for label, r, role, row_cells in zip(labels, runs, roles, cells, strict=True)
        ]  # fmt: skip
        boards.append({"task": task, "group": group, "metric": metric,
                       "columns": columns, "rows": rows})  # fmt: skip
    return boards
