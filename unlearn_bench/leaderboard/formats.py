"""Leaderboard rows -> Markdown, CSV, HTML, LaTeX and JSON text. Pure and deterministic.

Every output names each metric's direction (↑ higher is better, ↓ lower is better, no arrow: no
better direction, e.g. a forget-set truth ratio judged by closeness to the retain model), the
exact version of every metric, and the run ids behind every row, so a number can be traced to
its record. Nothing here reads a clock or a path: the same rows give the same bytes.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from typing import Any

from unlearn_bench.judges.validity import MIN_VALIDITY
from unlearn_bench.leaderboard.rows import Cell, Column, Row, columns_for, method_text

LEGEND = (
    "↑ higher is better, ↓ lower is better, no arrow: no better direction. "
    "± is the standard error of the mean over items; in rows with several seeds the value is the "
    "mean over seeds and ± the standard error over seeds, except for a p-value (forget quality), "
    "where the value is the median over seeds (each seed's value in the cell's note) and there "
    "is no ±. CSV, HTML and JSON also give 95% intervals that never leave the range the metric "
    "declares: Wilson score for shares of 0/1 items, percentile bootstrap of the mean for other "
    "per-item means, percentile bootstrap over seeds in rows with several seeds; each cell's "
    "method is in its JSON ci_method and HTML tooltip. No interval: fewer than two items or "
    "seeds, per-item scores not stored, a p-value over seeds, or a metric with no declared range."
)
COLLAPSED_NOTE = (
    "[COLLAPSED: reason]: the unlearned model collapsed (uniform output, one-token or empty "
    "generations, or retain probability under the floor; thresholds and values in the run "
    "header's collapse_check). Its numbers describe a broken model, not unlearning: never "
    "rank it."
)

JUDGES_NOTE = (
    "Judges and scorers in this table (a judge's rate is shown only when its measured validity "
    f"figure is at least {MIN_VALIDITY:.2f}, else withheld with the reason):"
)


def fmt(value: Any) -> str:
    """Four decimals, or three significant digits for tiny magnitudes (p-values like 1e-21)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if (abs(value) < 1e-3 and value != 0) else f"{value:.4f}"
    return str(value)


def arrow(higher_is_better: bool | None) -> str:
    """The direction mark of a column: up, down or none."""
    return {True: " ↑", False: " ↓"}.get(higher_is_better, "")  # type: ignore[arg-type]


def cell_text(cell: Cell | None, pm: str = " ± ") -> str:
    """A cell as "value ± stderr", or "-" when empty."""
    if cell is None:
        return "-"
    if cell.value is None and cell.note.startswith("withheld"):
        return cell.note  # the reason stands where the number would be
    text = fmt(cell.value)
    if cell.value is not None and cell.stderr is not None:
        text += pm + fmt(cell.stderr)
    return text


def version_list(columns: list[Column]) -> str:
    """``name vN`` for each metric name (eval-set prefixes dropped: versions belong to metrics)."""
    names = sorted({(c.name.rsplit("/", 1)[-1], c.version) for c in columns}, key=str)
    return ", ".join(f"{name} v{version}" for name, version in names)


def task_list(rows: list[Row]) -> str:
    """The tasks of ``rows`` with version and fingerprint."""
    tasks = sorted({(r.task, r.task_version, r.task_fingerprint) for r in rows}, key=str)
    return ", ".join(f"{t} v{v} (fingerprint {fp})" for t, v, fp in tasks)


def _footer(rows: list[Row], columns: list[Column]) -> list[str]:
    lines = [f"Task: {task_list(rows)}", f"Metric versions: {version_list(columns)}", LEGEND]
    methods = sorted({c.ci_method for r in rows for c in r.metrics.values() if c.ci_method})
    if methods:
        lines.append("Interval methods in this table: " + "; ".join(methods) + ".")
    judges = sorted({c.judge for r in rows for c in r.metrics.values() if c.judge})
    if judges:
        lines.append(JUDGES_NOTE + " " + "; ".join(judges) + ".")
    if any(r.collapsed for r in rows):
        lines.append(COLLAPSED_NOTE)
    if len({(r.task, r.task_fingerprint) for r in rows}) > len({r.task for r in rows}):
        lines.append("Warning: rows come from different task versions; compare with care.")
    return lines


def to_markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table, one column per metric."""
    if not rows:
        return "_no finished runs_\n"
    columns = columns_for(rows)
    head = ["model", "method", "hyperparameters", "seeds"]
    head += [c.key + arrow(c.higher_is_better) for c in columns] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.model, method_text(row), row.hparams, str(len(row.seeds))]
        cells += [cell_text(row.metrics.get(c.key)) for c in columns]
        cells.append(", ".join(row.run_ids))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n\n".join(_footer(rows, columns)) + "\n"


def _num(value: Any) -> str:
    return "" if value is None else repr(value)


def to_csv(rows: list[Row]) -> str:
    """One row per leaderboard row; per metric: value, stderr, n, 95% CI bounds."""
    columns = columns_for(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    meta = ["task", "task_version", "task_fingerprint", "model", "method", "role"]
    meta += ["hyperparameters", "seeds", "run_ids"]
    # The column exists when a row collapsed: tables without one keep their bytes.
    flagged = any(r.collapsed for r in rows)
    meta += ["collapsed"] if flagged else []
    stats = [f"{c.key}{suffix}" for c in columns for suffix in ("", ":stderr", ":n")]
    cis = [f"{c.key}{suffix}" for c in columns for suffix in (":ci95_low", ":ci95_high")]
    writer.writerow(meta + stats + cis)
    for row in rows:
        out = [row.task, _num(row.task_version), row.task_fingerprint or "", row.model, row.label]
        out += [row.role, row.hparams, " ".join(map(str, row.seeds)), " ".join(row.run_ids)]
        if flagged:
            out.append(_collapse_text(row))
        for c in columns:
            cell = row.metrics.get(c.key)
            out += [_num(cell.value), _num(cell.stderr), _num(cell.n)] if cell else ["", "", ""]
        for c in columns:
            cell = row.metrics.get(c.key)
            ci = cell.ci if cell else None
            out += [_num(ci[0]), _num(ci[1])] if ci else ["", ""]
        writer.writerow(out)
    return buffer.getvalue()


def _collapse_text(row: Row) -> str:
    """``reason at where: detail`` of a collapsed row, else empty."""
    c = row.collapsed
    return f"{c.get('reason')} at {c.get('where')}: {c.get('detail', '')}" if c else ""


_CSS = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
    "td.t{text-align:left}caption{text-align:left;font-weight:bold;margin-bottom:.4em}"
)


def _html_cell(cell: Cell | None) -> str:
    if cell is None:
        return "<td>-</td>"
    title = f"n={cell.n if cell.n is not None else '-'} ({cell.over})"
    if cell.ci:
        title += f"; 95% CI [{fmt(cell.ci[0])}, {fmt(cell.ci[1])}] ({cell.ci_method})"
    if cell.note:
        title += f"; {cell.note}"
    return f'<td title="{html.escape(title)}">{html.escape(cell_text(cell))}</td>'


def to_html(rows: list[Row], title: str = "") -> str:
    """A standalone HTML page; hover a cell for n, its 95% CI and any note."""
    columns = columns_for(rows)
    e = html.escape
    head = "".join(
        f'<th title="{e(c.name)} v{c.version}">{e(c.key + arrow(c.higher_is_better))}</th>'
        for c in columns
    )
    body = []
    for row in rows:
        meta = (row.model, method_text(row), row.hparams, str(len(row.seeds)))
        cells = "".join(f'<td class="t">{e(m)}</td>' for m in meta)
        cells += "".join(_html_cell(row.metrics.get(c.key)) for c in columns)
        cells += f'<td class="t">{e(", ".join(row.run_ids))}</td>'
        body.append(f"<tr>{cells}</tr>")
    footer = "".join(f"<p>{e(line)}</p>" for line in _footer(rows, columns)) if rows else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<table><caption>{e(title)}</caption>\n<thead><tr><th>model</th><th>method</th>"
        f"<th>hyperparameters</th><th>seeds</th>{head}<th>runs</th></tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + f"\n</tbody></table>\n{footer}\n</body></html>\n"
    )


_TEX = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}
_TEX["\\"] = r"\textbackslash{}"


def tex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(rows: list[Row]) -> str:
    """A booktabs ``tabular`` (needs the booktabs package); run ids go in a comment."""
    columns = columns_for(rows)
    arrows = {True: r" $\uparrow$", False: r" $\downarrow$"}
    head = ["model", "method", "hyperparameters"]
    head += [tex_escape(c.key) + arrows.get(c.higher_is_better, "") for c in columns]  # type: ignore[arg-type]
    lines = [r"\begin{tabular}{lll" + "r" * len(columns) + "}", r"\toprule"]
    lines.append(" & ".join(head) + r" \\")
    lines.append(r"\midrule")
    for row in rows:
        cells = [tex_escape(row.model), tex_escape(method_text(row)), tex_escape(row.hparams)]
        for c in columns:
            text = cell_text(row.metrics.get(c.key), pm=r" $\pm$ ")
            cells.append(text.replace("-", "--") if text == "-" else text)
        lines.append(" & ".join(cells) + r" \\  % " + ", ".join(row.run_ids))
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"% {line}" for line in _footer(rows, columns)] if rows else []
    return "\n".join(lines + notes) + "\n"


def to_json(rows: list[Row]) -> str:
    """Everything, machine-readable: columns with versions and directions, rows with cells."""
    columns = columns_for(rows)
    data = {
        "columns": [
            {
                "key": c.key,
                "metric": c.name,
                "version": c.version,
                "higher_is_better": c.higher_is_better,
            }
            for c in columns
        ],  # fmt: skip
        "rows": [
            {
                "task": r.task,
                "task_version": r.task_version,
                "task_fingerprint": r.task_fingerprint,
                "model": r.model,
                "method": r.label,
                "role": r.role,
                "hyperparameters": r.hparams,
                "seeds": r.seeds,
                "run_ids": r.run_ids,
                **({"collapsed": r.collapsed} if r.collapsed else {}),
                "metrics": {
                    k: {
                        "value": c.value,
                        "stderr": c.stderr,
                        "n": c.n,
                        "over": c.over,
                        "ci95": list(c.ci) if c.ci else None,
                        "ci_method": c.ci_method,
                        "version": c.version,
                        "higher_is_better": c.higher_is_better,
                        "note": c.note,
                        **({"judge": c.judge} if c.judge else {}),
                    }
                    for k, c in r.metrics.items()
                },
            }
            for r in rows
        ],  # fmt: skip
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
