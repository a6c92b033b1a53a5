"""Leaderboard figures (matplotlib, Agg, PNG + SVG), written next to the tables.

- ``<task>.tradeoff``: forget quality (log scale: it is a p-value spanning hundreds of orders of
  magnitude) against model utility, or against ``retain_utility`` when a task has no TOFU model
  utility; one colour per method, one point per leaderboard row, target and retain as references.
- ``<task>.dynamics``: each unlearning run's training log per step, one panel per logged
  quantity (``loss``, ``forget_nll``, ``retain_nll`` ...; bookkeeping such as ``lr``,
  ``tokens`` and ``*_s`` timings is left out). The log is ``<run>/train_log.jsonl``
  or, failing that, the file named by the header's ``stage_info.train_log``; one JSON object per
  line with a ``step``.
- ``<task>.scalability`` / ``<task>.sustainability``: MUSE's curves. They read the run header
  field ``protocol``: ``{"name": "scalability", "size": <forget-set size>}`` or
  ``{"name": "sustainability", "step": <1-based unlearning request>}``; the x axis is ``size``
  (or ``forget_size``) / ``step``, one panel per metric, one line per method and settings, with
  the target and retain rows of the same task as dashed reference lines.

Each figure's data is built by a pure function (``tradeoff_points``, ``dynamics_series``,
``protocol_curves``) that the tests check against the fixture records; drawing is separate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.rows import Row, rows_from_records
from unlearn_bench.runs import RunRecord

PROTOCOL_X = {"scalability": ("size", "forget_size"), "sustainability": ("step",)}
MAX_PANELS = 6
# Training-log fields that describe the run, not what it learns: not drawn as dynamics.
BOOKKEEPING = frozenset({"step", "lr", "tokens", "epoch", "elapsed_s", "seconds"})
MAX_LEGEND = 10  # more series than this: one legend entry per method, no per-point labels


def tradeoff_points(rows: list[Row]) -> tuple[str, list[dict[str, Any]]]:
    """(x metric name, points) for one task's rows: x utility, y forget quality."""
    x_name = "model_utility"
    if not any(_value(r, "model_utility") is not None for r in rows):
        x_name = "retain_utility"
    points = []
    for row in rows:
        x, y = _value(row, x_name), _value(row, "forget_quality")
        if x is None or y is None:
            continue
        points.append(
            {"label": row.label, "role": row.role, "hparams": row.hparams, "x": x, "y": y}
        )
    return x_name, points


def _value(row: Row, key: str) -> float | None:
    cell = row.metrics.get(key)
    if cell is None or cell.value is None or math.isnan(cell.value):
        return None
    return float(cell.value)


def train_log_path(record: RunRecord) -> Path | None:
    """A run's training log: its own copy, else the checkpoint's."""
    local = record.root / "train_log.jsonl"
    if local.is_file():
        return local
    named = (record.header.get("stage_info") or {}).get("train_log")
    return Path(named) if named and Path(named).is_file() else None


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines training log (a bad line is an error)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise UnlearnBenchError(f"{path}:{number}: not a JSON line") from None
    return rows


def dynamics_series(records: list[RunRecord], task: str) -> dict[str, dict[str, list]]:
    """{run name: {logged key: [(step, value), ...]}} for finished unlearning runs of ``task``."""
    series: dict[str, dict[str, list]] = {}
    for record in records:
        if not record.is_finished() or task not in record.results():
            continue
        path = train_log_path(record)
        if path is None or record.header.get("role") != "unlearned":
            continue
        name = f"{record.header.get('label', '?')} ({record.run_id})"
        for entry in read_train_log(path):
            for key, value in entry.items():
                if key in BOOKKEEPING or key.endswith("_s") or isinstance(value, bool):
                    continue
                if isinstance(value, int | float):
                    series.setdefault(name, {}).setdefault(key, []).append((entry["step"], value))
    return series


def protocol_curves(rows: list[Row], name: str) -> dict[str, dict[str, list]]:
    """{metric: {method and settings: [(x, value), ...] sorted by x}} for one protocol."""
    curves: dict[str, dict[str, list]] = {}
    for row in rows:
        protocol = row.protocol or {}
        if protocol.get("name") != name:
            continue
        x = next((protocol[k] for k in PROTOCOL_X[name] if k in protocol), None)
        if x is None:
            keys = " or ".join(PROTOCOL_X[name])
            raise UnlearnBenchError(f"run {row.run_id}: protocol {name!r} lacks {keys}")
        line = f"{row.label} {row.settings}".strip()
        for metric, cell in row.metrics.items():
            if cell.value is not None:
                curves.setdefault(metric, {}).setdefault(line, []).append((x, cell.value))
    for lines in curves.values():
        for points in lines.values():
            points.sort()
    return curves


def new_figure(panels: int) -> tuple[Any, list[Any]]:
    """A figure with ``panels`` axes in a grid (matplotlib's object API, no pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UnlearnBenchError(
            "plots need matplotlib: pip install 'unlearn-bench[plots]'"
        ) from None
    cols = 2 if panels in (2, 4) else min(3, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]
    return fig, axes


def save_figure(fig: Any, base: Path) -> list[Path]:
    """Write ``base``.png and a byte-stable ``base``.svg."""
    import matplotlib

    paths = [base.parent / f"{base.name}.png", base.parent / f"{base.name}.svg"]
    # A fixed hash salt and no date keep the SVG byte-stable across regenerations.
    with matplotlib.rc_context({"svg.hashsalt": "unlearn-bench"}):
        fig.savefig(paths[0], dpi=120)
        fig.savefig(paths[1], metadata={"Date": None})
    return paths


def draw_tradeoff(task: str, rows: list[Row], base: Path) -> list[Path]:
    """Forget efficacy against utility, one point per row."""
    x_name, points = tradeoff_points(rows)
    shown = [p for p in points if p["y"] > 0]
    if not shown:
        return []
    fig, (ax,) = new_figure(1)
    refs = {"target": ("*", "black"), "retain": ("s", "dimgray")}
    methods = sorted({p["label"] for p in shown if p["role"] not in refs})
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for label in [*refs, *methods]:
        mine = [p for p in shown if (p["role"] if p["role"] in refs else p["label"]) == label]
        if not mine:
            continue
        marker, colour = refs.get(label, ("o", colours.get(label, "C0")))
        ax.scatter([p["x"] for p in mine], [p["y"] for p in mine], marker=marker, s=60,
                   color=colour, label=label, zorder=3)  # fmt: skip
        for p in mine if label not in refs and len(shown) <= 3 * MAX_LEGEND else []:
            ax.annotate(p["hparams"], (p["x"], p["y"]), fontsize=6, alpha=0.7,
                        xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(f"{x_name} (higher is better)")
    ax.set_ylabel("forget quality, KS p-value (higher is better)")
    dropped = len(points) - len(shown)
    note = f"; {dropped} point(s) with forget quality 0 not drawn" if dropped else ""
    ax.set_title(f"{task}: forget quality vs {x_name}{note}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, base)


def draw_dynamics(task: str, series: dict[str, dict[str, list]], base: Path) -> list[Path]:
    """Training curves, one panel per logged quantity."""
    keys = sorted({k for run in series.values() for k in run}, key=lambda k: (k != "loss", k))
    if not keys:
        return []
    keys = keys[:MAX_PANELS]
    fig, axes = new_figure(len(keys))
    # Few runs: one legend entry each. Many: one colour and one entry per method, so the
    # legend stays readable however large the sweep.
    per_run = len(series) <= MAX_LEGEND
    methods = sorted({name.split(" (", 1)[0] for name in series})
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, key in zip(axes, keys, strict=True):
        labelled: set[str] = set()
        for index, (name, run) in enumerate(sorted(series.items())):
            if key not in run:
                continue
            method = name.split(" (", 1)[0]
            label = name if per_run else (None if method in labelled else method)
            labelled.add(method)
            steps, values = zip(*run[key], strict=True)
            colour = f"C{index % 10}" if per_run else colours[method]
            ax.plot(steps, values, marker="." if per_run else None, color=colour,
                    alpha=1.0 if per_run else 0.5, label=label)  # fmt: skip
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task}: unlearning dynamics (training logs)")
    return save_figure(fig, base)


def draw_protocol(task: str, name: str, rows: list[Row], base: Path) -> list[Path]:
    """A protocol's curves over its steps, one panel per metric."""
    curves = protocol_curves(rows, name)
    metrics = sorted(curves)[:MAX_PANELS]
    if not metrics:
        return []
    refs = [r for r in rows if r.role in ("target", "retain") and not r.protocol]
    fig, axes = new_figure(len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        for line, points in sorted(curves[metric].items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=line)
        for ref, style in zip(refs, ("--", ":"), strict=False):
            value = _value(ref, metric)
            if value is not None:
                ax.axhline(value, linestyle=style, color="gray", label=ref.label)
        direction = next(
            (r.metrics[metric].higher_is_better for r in rows if metric in r.metrics), None
        )
        arrow = {True: " (higher is better)", False: " (lower is better)"}.get(direction, "")  # type: ignore[arg-type]
        ax.set_title(metric + arrow, fontsize=10)
        ax.set_xlabel(PROTOCOL_X[name][0] if name == "sustainability" else "forget-set size")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task}: MUSE {name}")
    return save_figure(fig, base)


def write_plots(records: list[RunRecord], out_dir: Path, task: str | None = None) -> list[Path]:
    """Every figure that the records have data for; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = rows_from_records(records)
    tasks = sorted({r.task for r in rows if task is None or r.task == task})
    written: list[Path] = []
    for name in tasks:
        task_rows = [r for r in rows if r.task == name]
        plain = [r for r in task_rows if not r.protocol]
        written += draw_tradeoff(name, plain, out_dir / f"{name}.tradeoff")
        written += draw_dynamics(name, dynamics_series(records, name), out_dir / f"{name}.dynamics")
        for protocol in PROTOCOL_X:
            written += draw_protocol(name, protocol, task_rows, out_dir / f"{name}.{protocol}")
    return written
