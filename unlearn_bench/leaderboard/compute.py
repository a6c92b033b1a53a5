"""What each method buys per unit of compute: one task's metrics beside its training cost.

Issue 16's comparison (Yao, Xu, Liu 2023 put unlearning beside RLHF at "2% of its computational
time"). One line per leaderboard row of the task: the chosen metrics (a judge's number that
fails its validity bar stays withheld with the reason, as in every leaderboard), then what the
stage that made the model cost, read from the run header's ``stage_info.cost``
(:mod:`unlearn_bench.train.cost`): training FLOPs and the formula that estimated them, wall
seconds, tokens through forward and backward passes, and each of these FLOPs and seconds as a
percentage of the reference methods' (by default DPO's and RLHF-PPO's). A row over several
seeds shows the mean of its runs' costs. The untrained target has no training cost.

The figure puts each metric (y) against training FLOPs (x, log scale), one point per trained
row; a withheld or unmeasured metric is not plotted and the caption says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from unlearn_bench.errors import UnlearnBenchError

if TYPE_CHECKING:  # the command line imports this module's defaults: keep it light
    from unlearn_bench.leaderboard.rows import Cell, Row
    from unlearn_bench.runs import RunRecord

#: Issue 16's columns for the harmful scenario: harmful rate on unlearned and unseen prompts,
#: then diversity, fluency and the not-meaningful share on normal prompts.
HARMFUL_METRICS = (
    "unlearned_harmful/harmful_rate_probe",
    "unseen_harmful/harmful_rate_probe",
    "normal/diversity",
    "normal/fluency_ppl",
    "normal/not_meaningful",
)
#: The alignment baselines whose compute the others are measured against (registry names).
AGAINST = ("dpo_safe", "ppo_rlhf")
COST_KEYS = ("flops", "wall_s", "forward_tokens", "backward_tokens")


@dataclass
class ComputeLine:
    """One row of the comparison: a leaderboard row's metrics and its training cost."""

    row: Row
    method: str | None  # registry name of the row's method (None for target / retain)
    cost: dict[str, float | None]  # COST_KEYS, mean over the row's runs; None where missing
    formula: str | None
    shares: dict[str, dict[str, float | None]] = field(default_factory=dict)  # ref -> key -> %


def row_method(row: Row) -> str | None:
    """The registry name of a row's method, from its identity key."""
    method = (json.loads(row.key).get("method") or {}) if row.key else {}
    return method.get("method")


def _train_cost(records: list[RunRecord], row: Row) -> tuple[dict[str, float | None], str | None]:
    costs = [
        (r.header.get("stage_info") or {}).get("cost") or {}
        for r in records
        if r.header.get("run_id") in row.run_ids
    ]
    out: dict[str, float | None] = {}
    for key in COST_KEYS:
        values = [float(c[key]) for c in costs if c.get(key) is not None]
        out[key] = sum(values) / len(values) if costs and len(values) == len(costs) else None
    formulas = sorted({str(c["formula"]) for c in costs if c.get("formula")})
    return out, "; ".join(formulas) or None


def _reference(lines: list[ComputeLine], name: str) -> ComputeLine | None:
    """The one line whose method or label is ``name``; several is a bad input."""
    found = [ln for ln in lines if name in (ln.method, ln.row.label)]
    if len(found) > 1:
        labels = ", ".join(f"{ln.row.label} ({ln.row.hparams})" for ln in found)
        raise UnlearnBenchError(
            f"several rows match compute reference {name!r} ({labels}); name one by its label"
        )
    return found[0] if found else None


def _percent(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return 100.0 * value / reference


def compute_lines(
    rows: list[Row], records: list[RunRecord], against: tuple[str, ...] = AGAINST
) -> tuple[list[ComputeLine], dict[str, ComputeLine | None]]:
    """The comparison's lines for one task's rows, and the reference line of each ``against``."""
    lines = []
    for row in rows:
        cost, formula = _train_cost(records, row)
        lines.append(ComputeLine(row, row_method(row), cost, formula))
    references = {name: _reference(lines, name) for name in against}
    for line in lines:
        for name, ref in references.items():
            line.shares[name] = {
                key: _percent(line.cost[key], ref.cost[key] if ref else None)
                for key in ("flops", "wall_s")
            }
    return lines, references


def metric_cell(line: ComputeLine, metric: str) -> Cell | None:
    """The row's cell of ``metric`` (None when the run did not measure it)."""
    return line.row.metrics.get(metric)


def figure_points(
    lines: list[ComputeLine], metrics: tuple[str, ...]
) -> tuple[dict[str, list[tuple[str, float, float]]], list[str]]:
    """Per metric the plotted (label, training FLOPs, value) points, and what is left out.

    A point needs a trained row (FLOPs > 0) and a number. A withheld cell is never plotted:
    the second list says, per metric, which rows were withheld and why, or that the metric was
    not measured at all, for the figure's caption.
    """
    points: dict[str, list[tuple[str, float, float]]] = {}
    left_out: list[str] = []
    for metric in metrics:
        withheld: dict[str, list[str]] = {}
        for line in lines:
            cell, flops = metric_cell(line, metric), line.cost["flops"]
            if cell is not None and cell.value is None and cell.note.startswith("withheld"):
                withheld.setdefault(cell.note, []).append(line.row.label)
            elif cell is not None and cell.value is not None and flops:
                points.setdefault(metric, []).append((line.row.label, flops, float(cell.value)))
        for note, labels in withheld.items():
            left_out.append(f"{metric} not plotted for {', '.join(labels)} ({note})")
        if metric not in points and not withheld:
            left_out.append(f"{metric} not measured")
    return points, left_out
