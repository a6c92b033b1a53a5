"""Optional leaderboard columns: what the stage that made each row's model cost.

``train_wall_s`` and ``train_flops`` come from each run header's ``stage_info.cost`` (see
:mod:`unlearn_bench.train.cost`); a row averaged over seeds shows the mean over its runs. A row
whose model was not trained (the base model) or whose FLOPs were withheld (a LoRA checkpoint
without its adapter file) gets no cell.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.leaderboard.rows import Cell, Row
from unlearn_bench.runs import RunRecord

COST_COLUMNS = ("train_wall_s", "train_flops")


def _stage_cost(header: dict[str, Any]) -> dict[str, Any]:
    return (header.get("stage_info") or {}).get("cost") or {}


def add_cost_cells(rows: list[Row], records: list[RunRecord]) -> None:
    """Give each row ``train_wall_s`` / ``train_flops`` cells from its runs' headers."""
    costs = {r.header.get("run_id", r.root.name): _stage_cost(r.header) for r in records}
    for row in rows:
        found = [costs[run] for run in row.run_ids if costs.get(run)]
        for column, key in zip(COST_COLUMNS, ("wall_s", "flops"), strict=True):
            values = [float(c[key]) for c in found if c.get(key) is not None]
            if values and len(values) == len(row.run_ids):
                mean = sum(values) / len(values)
                row.metrics[column] = Cell(mean, None, len(values), False, None, note="cost")
