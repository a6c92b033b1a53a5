"""Published reference tables (``leaderboards/published/*.yaml``) and our runs side by side.

A published table is data with its source (paper or project, table, model, commit/URL) and a
``status``: ``transcribed`` (numbers entered from the named source), ``transcribed from
secondary sources`` (the primary document was out of reach; ``source.via`` names the secondary
documents the numbers came through, and every comparison page repeats that caveat) or ``numbers
not transcribed`` (structure only: nothing is invented). A cell is a number, empty, or ``NM``
(the source's own "not meaningful" mark, e.g. fluency of collapsed outputs). Each metric names
the key of our results it corresponds to (``ours``), an optional ``scale`` (our value =
published value x scale, e.g. 100 where we report ROUGE x100) and how to difference it
(``diff: absolute`` or ``log10`` for p-values such as TOFU's forget quality).
Each published row says which of our rows it corresponds to (``match``: role, label or method),
for tables that cover several models which ``model`` it reports, and how far its numbers can be
vouched for (``source_quality``, see :mod:`unlearn_bench.leaderboard.source_quality`): rows from
a single secondary source or disputed ones are labelled unverified and left out of differences
unless ``include_unverified`` is set.

Differences are ours - published (or log10(ours) - log10(published)). Published numbers come
from other models, data sizes and budgets: a difference describes, it does not validate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard import source_quality as quality
from unlearn_bench.leaderboard.formats import arrow, fmt
from unlearn_bench.leaderboard.rows import Row, method_text
from unlearn_bench.yaml_strict import build_dataclass, load_yaml

TRANSCRIBED = "transcribed"
SECONDARY = "transcribed from secondary sources"
STATUSES = (TRANSCRIBED, SECONDARY, "numbers not transcribed")
NOT_MEANINGFUL = "NM"
PUBLISHED_DIRS = (
    Path("leaderboards/published"),
    Path(__file__).resolve().parent.parent / "leaderboards" / "published",
)


@dataclass(frozen=True)
class Source:
    """Where a published table comes from: paper, table, model, link and setup."""

    paper: str
    table: str
    model: str
    url: str = ""
    commit: str = ""
    setup: str = ""
    notes: str = ""
    via: str = ""  # the secondary documents the numbers came through, when not the primary one


@dataclass(frozen=True)
class PublishedMetric:
    """One published column and our results key it corresponds to."""

    name: str
    ours: str | None = None  # key in our results.json; None: we have no counterpart
    higher_is_better: bool | None = None
    scale: float = 1.0
    diff: str = "absolute"  # or "log10"
    note: str = ""
    # A short mark shown on the metric's difference column when ours and the source's are not
    # measured alike (e.g. "different ROUGE tokenisation"); ``note`` says how they differ.
    caveat: str = ""


@dataclass(frozen=True)
class PublishedRow:
    """One published row and which of our rows it corresponds to."""

    method: str
    match: dict[str, Any] = field(default_factory=dict)  # role / label / method of our rows
    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    model: str = ""  # the source's model for this row, where the table covers several
    source_quality: str = ""  # required: one of source_quality.QUALITIES (checked on load)

    @property
    def unverified(self) -> bool:
        """Single secondary source or disputed: labelled, and no difference by default."""
        return quality.is_unverified(self.source_quality)


@dataclass(frozen=True)
class PublishedTable:
    """A published results table as transcribed, with provenance."""

    name: str
    benchmark: str
    status: str
    source: Source
    metrics: list[PublishedMetric]
    rows: list[PublishedRow]
    task: str | None = None  # our task name the table corresponds to
    description: str = ""
    path: str = ""


def load_published(path: Path) -> PublishedTable:
    """Parse and validate one published table; any problem is a one-line error naming it."""
    data = load_yaml(path)
    table: PublishedTable = build_dataclass(PublishedTable, {**data, "path": str(path)}, str(path))
    if table.status not in STATUSES:
        raise UnlearnBenchError(f"{path}: status must be one of {STATUSES}, got {table.status!r}")
    if table.status == SECONDARY and not table.source.via:
        raise UnlearnBenchError(f"{path}: status {SECONDARY!r} needs source.via")
    names = [m.name for m in table.metrics]
    for metric in table.metrics:
        if metric.diff not in ("absolute", "log10"):
            raise UnlearnBenchError(f"{path}: metric {metric.name}: diff must be absolute|log10")
    for row in table.rows:
        unknown = sorted(set(row.match) - {"role", "label", "method"})
        if unknown:
            raise UnlearnBenchError(f"{path}: row {row.method}: unknown match key {unknown[0]!r}")
        numbers = [v for v in row.values.values() if v is not None]
        quality.check_row(f"{path}: row {row.method}" + (f" ({row.model})" if row.model else ""),
                          row.source_quality, bool(numbers), row.note,
                          secondary_table=table.status == SECONDARY)  # fmt: skip
        for key, value in row.values.items():
            if key not in names:
                raise UnlearnBenchError(f"{path}: row {row.method}: unknown metric {key!r}")
            if value is not None and value != NOT_MEANINGFUL and not isinstance(value, int | float):
                raise UnlearnBenchError(
                    f"{path}: row {row.method}: {key} must be a number or {NOT_MEANINGFUL!r}"
                )
        if not has_numbers(table) and any(v is not None for v in row.values.values()):
            raise UnlearnBenchError(f"{path}: numbers given but status is {table.status!r}")
    return table


def has_numbers(table: PublishedTable) -> bool:
    """Whether the table's numbers were transcribed (from the source or a secondary one)."""
    return table.status in (TRANSCRIBED, SECONDARY)


def published_dir() -> Path:
    """The first published-tables folder that exists."""
    for candidate in PUBLISHED_DIRS:
        if candidate.is_dir():
            return candidate
    raise UnlearnBenchError("no leaderboards/published folder found; pass --published-dir")


def find_published(name: str, folder: Path | None = None) -> Path:
    """A path as given, or a table name (file stem) under the published folder."""
    if Path(name).is_file():
        return Path(name)
    folder = folder or published_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(folder.glob("*.yaml")))
        raise UnlearnBenchError(f"no published table {name!r}; known: {known}")
    return path


def _matches(row: Row, match: dict[str, Any]) -> bool:
    method = (json.loads(row.key).get("method") or {}).get("method") if row.key else None
    have = {"role": row.role, "label": row.label, "method": method}
    return bool(match) and all(have[k] == v for k, v in match.items())


def difference(ours: float | None, published: float | None, how: str) -> float | None:
    """Ours minus published (or of their log10); None when either is missing."""
    if ours is None or published is None:
        return None
    if how == "log10":
        if ours <= 0 or published <= 0:
            return None
        return math.log10(ours) - math.log10(published)
    return ours - published


def comparison_lines(
    table: PublishedTable, rows: list[Row], include_unverified: bool = False
) -> list[dict[str, Any]]:
    """One line per (published row, our matching row); a published row without runs gets one.

    Unverified published rows get no difference unless ``include_unverified``.
    """
    lines = []
    for pub in table.rows:
        mine: list[Row | None] = [r for r in rows if _matches(r, pub.match)] or [None]
        for row in mine:
            cells, withheld = {}, {}
            for metric in table.metrics:
                raw = pub.values.get(metric.name)
                published = None if raw in (None, NOT_MEANINGFUL) else float(raw) * metric.scale
                cell = row.metrics.get(metric.ours) if (row and metric.ours) else None
                ours = cell.value if cell else None
                if cell is not None and cell.note.startswith("withheld"):
                    withheld[metric.name] = cell.note  # no number, so no difference either
                skip = pub.unverified and not include_unverified
                delta = None if skip else difference(ours, published, metric.diff)
                cells[metric.name] = (published, ours, delta)
            method = f"{pub.method} ({pub.model})" if pub.model else pub.method
            method += quality.row_label(pub.source_quality, include_unverified)
            marks = {m for m, v in pub.values.items() if v == NOT_MEANINGFUL}
            lines.append({"method": method, "row": row, "cells": cells, "not_meaningful": marks,
                          "withheld": withheld})  # fmt: skip
    return lines


def to_markdown(
    table: PublishedTable, rows: list[Row], task: str, include_unverified: bool = False
) -> str:
    """The comparison as Markdown: published, ours and the difference per metric."""
    if not has_numbers(table):
        raise UnlearnBenchError(
            f"published table {table.name} has status {table.status!r}: there are no numbers "
            f"to compare with (see {table.path})"
        )
    src = table.source
    models = ", ".join(sorted({r.model for r in rows})) or "-"
    out = [
        f"# {table.name}: published vs ours",
        "",
        f"Published: {src.paper}; {src.table}; model {src.model}"
        + (f"; {src.url}" if src.url else ""),
        f"Ours: task {task}, model(s) {models}, from run records.",
        "Δ = ours - published (log10 ratio where marked). Models, data and budgets differ: a "
        "difference describes, it does not validate.",
        "",
    ]
    if table.status == SECONDARY:
        out[2:2] = [
            f"**Caveat: {SECONDARY}.** The primary document was not at hand; the numbers came "
            f"through {src.via}",
            "",
        ]
    head = ["published method", "our row"]
    for m in table.metrics:
        tag = " (log10)" if m.diff == "log10" else ""
        name = m.name + arrow(m.higher_is_better)
        if m.ours is None:  # nothing of ours to set beside it: the published column alone
            head.append(f"{name} published (ours: no counterpart)")
            continue
        ours = "ours" if m.ours == m.name else f"ours ({m.ours})"
        caveat = f" ({m.caveat})" if m.caveat else ""
        head += [f"{name} published", f"{name} {ours}", f"Δ{tag}{caveat}"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines = comparison_lines(table, rows, include_unverified)
    for line in lines:
        row = line["row"]
        who = (
            " ".join(filter(None, [method_text(row), row.hparams])) + f" ({', '.join(row.run_ids)})"
            if row
            else "no run"
        )
        cells = [line["method"], who]
        for m in table.metrics:
            published, ours, delta = line["cells"][m.name]
            shown = NOT_MEANINGFUL if m.name in line["not_meaningful"] else fmt(published)
            if m.ours is None:
                cells.append(shown)
                continue
            ours_text = line["withheld"].get(m.name) or fmt(ours)
            cells += [shown, ours_text, "-" if delta is None else f"{delta:+.3g}"]
        out.append("| " + " | ".join(cells) + " |")
    notes = [f"- {m.name}: {m.note}" for m in table.metrics if m.note]
    notes += [
        f"- {row.method}" + (f" ({row.model})" if row.model else "") + f": {row.note}"
        for row in table.rows
        if row.note
    ]
    notes += [f"- scale: published {m.name} x {m.scale:g}" for m in table.metrics if m.scale != 1]
    compared = [line["row"].metrics.get(m.ours) for line in lines if line["row"]
                for m in table.metrics if m.ours]  # fmt: skip
    judges = sorted({cell.judge for cell in compared if cell and cell.judge})
    if judges:
        notes.append("- our judges: " + "; ".join(judges))
    if src.notes:
        notes.append(f"- source: {src.notes}")
    if any(row.unverified for row in table.rows):
        notes.append(quality.legend(include_unverified))
    if any(line["row"] is not None and line["row"].collapsed for line in lines):
        notes.append(
            "- [COLLAPSED]: our model collapsed (train/collapse.py); its numbers describe a "
            "broken model, not unlearning, and match nothing published"
        )
    if any(line["not_meaningful"] for line in lines):
        notes.append(f"- {NOT_MEANINGFUL}: not meaningful, the source's mark for collapsed outputs")
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def list_tables(folder: Path) -> str:
    """One line per published table: name, status, task, unverified rows and model."""
    lines = []
    for path in sorted(folder.glob("*.yaml")):
        table = load_published(path)
        shaky = f"unverified={sum(r.unverified for r in table.rows)}/{len(table.rows)}"
        lines.append(f"{path.stem:48} {table.status:34} task={table.task or '-'}  {shaky}  "
                     f"{table.source.model}")  # fmt: skip
    return "\n".join(lines) + "\n"
