"""Run records -> leaderboard rows: one row per (task, model, method, hyperparameters).

What makes two runs "the same row" is everything that can change their numbers except the seed:
the model, the role and label, the full method (or finetune) configuration, the finetune that
made the starting model, the evaluation settings, the backend and dtype, and the task's
fingerprint. Among runs of one row:

- a rerun with the same seed supersedes the older one (records are read oldest first);
- runs with different seeds are averaged: the row reports the mean over seeds and, as its
  standard error, the sample standard deviation over seeds / sqrt(k) (``over == "seeds"``);
  a p-value is summarised by its median instead (below).
  With one seed the run's own per-item standard error is kept (``over == "items"``).

Intervals never leave the range the metric declares at its definition
(``leaderboard.intervals``, ``metrics.intervals``): a single run keeps the interval stored in
its result or gets one from its stored per-item scores (Wilson for shares of 0/1 items,
percentile bootstrap of the mean otherwise); a row over seeds gets a percentile bootstrap over
the seeds' values; a p-value (forget quality) over seeds is the median of the seeds' values,
listed in the cell's note, with neither standard error nor interval. Each cell names its
interval's method (``Cell.ci_method``).

A metric recorded under two versions in one table becomes two columns, ``name@v1`` and
``name@v2``: numbers from different definitions are never averaged or shown as one column.

A row any of whose runs was marked collapsed (header ``collapsed``, see
``train/collapse.py``) carries that verdict in ``Row.collapsed``: every format labels it, and
nothing that ranks rows (the viewer's best cells) counts it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unlearn_bench.leaderboard.intervals import RangeInfo, range_info, run_interval, seed_summary
from unlearn_bench.runs import RunRecord

ROLE_ORDER = {"base": 0, "target": 1, "retain": 2, "unlearned": 3}
# Method fields always shown in the hyperparameter cell; any other field is shown only when it
# differs from UnlearnConfig's default, so the cell stays short but never hides a difference.
_SHOWN = ("lr", "epochs", "max_steps", "batch_size")
_HIDDEN = {"method", "label", "args", *_SHOWN}


@dataclass
class Cell:
    """One metric of one row: value, standard error, CI, and where they come from."""

    value: float | None
    stderr: float | None
    n: int | None
    higher_is_better: bool | None
    version: int | None
    over: str = "items"  # "items": one run's per-item stats; "seeds": across seeds
    ci: tuple[float, float] | None = None
    note: str = ""
    ci_method: str = ""  # how ``ci`` was computed (leaderboard.intervals)
    judge: str = ""  # the judges / scorers behind the number (``validity.judge_text``)


@dataclass
class Row:
    """One leaderboard row: a (task, model, method, hyperparameters) group of runs."""

    task: str
    model: str
    label: str
    role: str
    hparams: str
    run_ids: list[str]
    seeds: list[int]
    metrics: dict[str, Cell]
    task_version: int | None = None
    task_fingerprint: str | None = None
    key: str = ""  # canonical identity (JSON); rows with equal keys are the same row
    config: dict[str, Any] = field(default_factory=dict)
    settings: str = ""  # hparams without the protocol tag (plots group curves by it)
    protocol: dict[str, Any] | None = None  # header "protocol" (MUSE scalability/sustainability)
    collapsed: dict[str, Any] | None = None  # the first collapsed run's verdict, else None

    @property
    def run_id(self) -> str:
        """The newest run behind the row (the first of ``run_ids``)."""
        return self.run_ids[0]


@dataclass(frozen=True)
class Column:
    """One metric column: its key, stored name, version and direction."""

    key: str  # the column's id in Row.metrics (``name`` or ``name@vN``)
    name: str  # the metric key as stored in results.json
    version: int | None
    higher_is_better: bool | None


def _fmt_num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):  # nested settings (e.g. controls): compact, stable
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def hparams_text(header: dict[str, Any]) -> str:
    """Short, human-readable hyperparameters of a run (method settings, or the finetune's)."""
    text = _settings_text(header)
    protocol = header.get("protocol")
    if protocol:  # MUSE scalability / sustainability points are rows of their own
        extra = " ".join(f"{k}={_fmt_num(v)}" for k, v in sorted(protocol.items()) if k != "name")
        text = f"{text} [{protocol.get('name', 'protocol')} {extra}]".strip()
    return text


def _settings_text(header: dict[str, Any]) -> str:
    from unlearn_bench.config import UnlearnConfig

    method = header.get("method")
    if not method:
        finetune = (header.get("config") or {}).get("finetune")
        if header.get("role") in ("target", "retain") and finetune:
            return f"ft lr={_fmt_num(finetune.get('lr'))} ep={_fmt_num(finetune.get('epochs'))}"
        return ""
    defaults = dataclasses.asdict(UnlearnConfig(method=method.get("method", "grad_ascent")))
    parts = [f"lr={_fmt_num(method.get('lr'))}"]
    if method.get("max_steps"):
        parts.append(f"steps={method['max_steps']}")
    else:
        parts.append(f"ep={_fmt_num(method.get('epochs'))}")
    parts.append(f"bs={method.get('batch_size')}")
    for name in sorted(set(method) - _HIDDEN):
        if name not in defaults or method[name] != defaults[name]:
            parts.append(f"{name}={_fmt_num(method[name])}")
    parts += [f"{k}={_fmt_num(v)}" for k, v in sorted((method.get("args") or {}).items())]
    return " ".join(parts)


def _identity(header: dict[str, Any], task: str) -> str:
    config = header.get("config") or {}
    method = dict(header.get("method") or {})
    method.pop("label", None)
    ident = {
        "task": task,
        "task_fingerprint": (header.get("task") or {}).get("fingerprint"),
        "model": config.get("model", "?"),
        "role": header.get("role", "?"),
        "label": header.get("label", "?"),
        "method": method,
        "finetune": config.get("finetune"),
        "eval": config.get("eval"),
        "backend": config.get("backend"),
        "dtype": config.get("dtype"),
        "protocol": header.get("protocol"),
    }
    return json.dumps(ident, sort_keys=True, default=str)


def _entry_cell(entry: dict[str, Any], name: str = "") -> Cell:
    from unlearn_bench.judges.validity import judge_text, withheld_reason

    reason = withheld_reason(name, entry)
    if reason:  # a verdict judge without a passing validity figure: no number at all
        hib, version = entry.get("higher_is_better"), entry.get("version")
        return Cell(None, None, entry.get("n"), hib, version, note=reason, judge=judge_text(entry))
    ci = entry.get("ci")
    if ci is None and entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        ci = (entry["ci_low"], entry["ci_high"])
    return Cell(
        value=entry.get("value"),
        stderr=entry.get("stderr"),
        n=entry.get("n"),
        higher_is_better=entry.get("higher_is_better"),
        version=entry.get("version"),
        ci=tuple(ci) if ci is not None else None,  # type: ignore[arg-type]
        note=entry.get("note") or "",
        ci_method=entry.get("ci_method") or "",
        judge=judge_text(entry),
    )


def _over_seeds(cells: list[Cell], info: RangeInfo | None) -> Cell:
    """The seeds' cells as one (module docstring; ``leaderboard.intervals.seed_summary``)."""
    values = [c.value for c in cells if c.value is not None and not math.isnan(c.value)]
    first = cells[0]
    if not values:
        return Cell(None, None, 0, first.higher_is_better, first.version, "seeds")
    value, stderr, ci, method, note = seed_summary(info, values)
    cell = Cell(value, stderr, len(values), first.higher_is_better, first.version, "seeds", ci)
    cell.note, cell.ci_method = note, method
    return cell


def _run_cell(cell: Cell, column: str, samples: Callable[[], list[dict[str, Any]]]) -> Cell:
    """A single run's cell with its range-respecting interval (``run_interval``)."""
    if cell.value is None:
        cell.ci = None
        return cell
    ci, method = run_interval(range_info(column), column, cell.ci, cell.n, samples)
    cell.ci = ci
    if ci is not None:
        cell.ci_method = method or cell.ci_method or "stored with the result"
    else:
        cell.ci_method = ""
        if method:
            cell.note = f"{cell.note}; {method}" if cell.note else method
    return cell


def _sample_loader(record: RunRecord, task: str) -> Callable[[], list[dict[str, Any]]]:
    """Read a run's stored samples at most once, and only if some cell needs them."""
    loaded: list[list[dict[str, Any]]] = []

    def samples() -> list[dict[str, Any]]:
        if not loaded:
            loaded.append(record.read_samples(task))
        return loaded[0]

    return samples


_Run = tuple[dict, str, dict, RunRecord]  # header, task, results of that task, the record


def _collect(records: list[RunRecord]) -> dict[str, dict[int, _Run]]:
    """Map identity -> seed -> (header, task, results, record); newer runs overwrite."""
    found: dict[str, dict[int, _Run]] = {}
    for record in records:
        if not record.is_finished():
            continue
        header = record.header
        for task, metrics in record.results().items():
            ident = _identity(header, task)
            found.setdefault(ident, {})[int(header.get("seed", 0))] = (
                header,
                task,
                metrics,
                record,
            )
    return found


def _versioned_keys(found: dict[str, dict[int, _Run]]) -> dict[tuple, str]:
    """(task, metric, version) -> column id; ``name@vN`` only where a task has two versions."""
    versions: dict[tuple[str, str], set[Any]] = {}
    for by_seed in found.values():
        for _, task, metrics, _ in by_seed.values():
            for name, entry in metrics.items():
                versions.setdefault((task, name), set()).add(entry.get("version"))
    out = {}
    for (task, name), seen in versions.items():
        for version in seen:
            out[(task, name, version)] = name if len(seen) == 1 else f"{name}@v{version}"
    return out


def _display_model(model: str) -> str:
    # A local path shows its last component: tables stay readable and never leak home folders.
    return model.rstrip("/").rsplit("/", 1)[-1] if model.startswith(("/", ".", "~")) else model


def rows_from_records(records: list[RunRecord]) -> list[Row]:
    """Build sorted leaderboard rows from finished run records (module docstring)."""
    found = _collect(records)
    column_ids = _versioned_keys(found)
    rows = []
    for ident, by_seed in found.items():
        seeds = sorted(by_seed)
        runs = [by_seed[s] for s in seeds]
        header, task, _, _ = max(runs, key=lambda r: r[0].get("created", ""))
        per_metric: dict[str, list[Cell]] = {}
        for _, _, metrics, _ in runs:
            for name, entry in metrics.items():
                col = column_ids[(task, name, entry.get("version"))]
                per_metric.setdefault(col, []).append(_entry_cell(entry, name))
        cells = {}
        samples = _sample_loader(runs[0][3], task)
        for col, group in per_metric.items():
            if len(runs) == 1:
                cell = _run_cell(group[0], col, samples)
            else:
                cell = _over_seeds(group, range_info(col))
                cell.judge = "; ".join(sorted({c.judge for c in group if c.judge}))
            withheld = [c for c in group if c.note.startswith("withheld")]
            if withheld:  # one seed's judge fails the bar: the row's number is withheld
                cell = withheld[0]
            cells[col] = cell
        run_ids = [r[0]["run_id"] for r in sorted(runs, key=lambda r: r[0].get("created", ""))]
        task_info = header.get("task") or {}
        rows.append(
            Row(
                task=task,
                model=_display_model((header.get("config") or {}).get("model", "?")),
                label=header.get("label", "?"),
                role=header.get("role", "?"),
                hparams=hparams_text(header),
                run_ids=run_ids[::-1],
                seeds=seeds,
                metrics=cells,
                task_version=task_info.get("version"),
                task_fingerprint=task_info.get("fingerprint"),
                key=ident,
                config=header.get("config") or {},
                settings=_settings_text(header),
                protocol=header.get("protocol"),
                collapsed=next((r[0]["collapsed"] for r in runs if r[0].get("collapsed")), None),
            )
        )
    _disambiguate(rows)
    return sorted(rows, key=_sort_key)


def _sort_key(row: Row) -> tuple:
    return (row.task, ROLE_ORDER.get(row.role, 9), row.model, row.label, row.hparams, row.key)


def _disambiguate(rows: list[Row]) -> None:
    """Rows that differ only in settings the short text hides get a config hash appended."""
    seen: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        seen.setdefault((row.task, row.model, row.label, row.hparams), []).append(row)
    for group in seen.values():
        if len(group) > 1:
            for row in group:
                digest = hashlib.sha256(row.key.encode()).hexdigest()[:8]
                row.hparams = f"{row.hparams} [cfg {digest}]".strip()


def method_text(row: Row) -> str:
    """The row's method cell: its label, with a collapse marker when the model collapsed."""
    if not row.collapsed:
        return row.label
    return f"{row.label} [COLLAPSED: {row.collapsed.get('reason', '?')}]"


def columns_for(rows: list[Row]) -> list[Column]:
    """Columns in a stable order: derived metrics (no ``/``) first, then per-set metrics."""
    seen: dict[str, Column] = {}
    for row in rows:
        for col, cell in row.metrics.items():
            if col not in seen:
                name = col.split("@v")[0]
                seen[col] = Column(col, name, cell.version, cell.higher_is_better)
    first: dict[str, int] = {}  # first appearance of each metric name; versions then in order
    for column in seen.values():
        first.setdefault(column.name, len(first))
    return sorted(
        seen.values(), key=lambda c: ("/" in c.name, first[c.name], c.version or 0, c.key)
    )
