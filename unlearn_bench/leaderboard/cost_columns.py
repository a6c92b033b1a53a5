"""Optional leaderboard columns: what making and evaluating each row's model cost.

``train_wall_s`` and ``train_flops`` come from each run header's ``stage_info.cost`` (the
finetune or unlearn stage), ``eval_wall_s`` and ``eval_flops`` from ``stages.evaluate.cost``
(see :mod:`unlearn_bench.train.cost`); a row averaged over seeds shows the mean over its runs.
A row gets no cell where a run has no such value: the base model was not trained, and FLOPs
are withheld for a LoRA checkpoint without its adapter file and for evaluation on a backend
whose model is not in the runner's process.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.leaderboard.rows import Cell, Row
from unlearn_bench.runs import RunRecord

COST_COLUMNS = ("train_wall_s", "train_flops", "eval_wall_s", "eval_flops")


def _stage_costs(header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    train = (header.get("stage_info") or {}).get("cost") or {}
    evaluate = ((header.get("stages") or {}).get("evaluate") or {}).get("cost") or {}
    return {"train": train, "eval": evaluate}


def add_cost_cells(rows: list[Row], records: list[RunRecord]) -> None:
    """Give each row its cost cells (``COST_COLUMNS``) from its runs' headers."""
    costs = {r.header.get("run_id", r.root.name): _stage_costs(r.header) for r in records}
    for row in rows:
        found = [costs[run] for run in row.run_ids if run in costs]
        for column in COST_COLUMNS:
            stage, key = column.split("_", 1)
            values = [float(c[stage][key]) for c in found if c[stage].get(key) is not None]
            if values and len(values) == len(row.run_ids):
                mean = sum(values) / len(values)
                row.metrics[column] = Cell(mean, None, len(values), False, None, note="cost")
