"""Regression checks for CI: compare leaderboard rows with a reviewed baseline file.

The baseline is YAML with sorted keys, one block per leaderboard row (``task | model | method |
hyperparameters``) and one entry per metric with its ``value``, ``version`` and ``better``
(``higher``, ``lower`` or ``either``: a metric without a better direction fails when it moves
beyond tolerance either way). Reviewers may edit ``better`` (e.g. ``lower`` for a forget-set
probability) and the ``tolerances`` block.

Tolerance spec, from the baseline's ``tolerances`` and then ``--tolerance`` (later wins), as
comma-separated ``PATTERN=TOL``: ``PATTERN`` is a metric key (``forget/probability``) or a glob
(``forget/*``, ``*``); ``TOL`` is an absolute amount (``0.02`` or ``abs:0.02``) or a share of the
baseline's magnitude (``rel:0.5``). An exact key beats a glob, a longer glob beats a shorter one;
a metric no pattern matches gets tolerance 0 (any move in the wrong direction fails).

A metric regresses when it moves beyond its tolerance in the wrong direction, or disappears,
or becomes empty, or changes version (a new definition needs a new baseline). A row whose model
collapsed (``train/collapse.py``) is reported first, as ``COLLAPSED`` with the reason: its
numbers are still compared (they are the code's deterministic output, which CI guards), but
the report says they describe a broken model. Collapse alone does not fail the check: on
CI's tiny random model unlearning often loops generations, and that is not a code change.
Moves beyond tolerance in the right direction are reported as improvements (time to refresh
the baseline).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.formats import fmt
from unlearn_bench.leaderboard.rows import Row
from unlearn_bench.paths import atomic_write_text
from unlearn_bench.yaml_strict import load_yaml

FORMAT = "unlearn-bench-baseline/1"
BETTER = {True: "higher", False: "lower", None: "either"}
HEADER = (
    "# unlearn-bench regression baseline: reviewed values that CI compares new runs against.\n"
    "# Regenerate with `unlearn-bench regress --write-baseline FILE --runs-dir DIR`.\n"
    "# `better` (higher | lower | either) says which move is a regression; `tolerances` maps a\n"
    "# metric key or glob to an absolute amount (0.02) or a relative one (rel:0.5).\n"
)


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move: an absolute amount or a fraction of the baseline."""

    amount: float
    relative: bool = False

    def allowed(self, baseline: float) -> float:
        """The allowed change for a metric whose baseline is ``baseline``."""
        return self.amount * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"rel:{self.amount:g}" if self.relative else f"{self.amount:g}"


def parse_tolerance(text: str) -> Tolerance:
    """A tolerance written "0.01", "abs:0.01" or "rel:0.05"."""
    raw = str(text).strip()
    relative = raw.startswith("rel:")
    number = raw.removeprefix("rel:").removeprefix("abs:")
    try:
        amount = float(number)
    except ValueError:
        raise UnlearnBenchError(f"bad tolerance {raw!r}: use 0.02, abs:0.02 or rel:0.5") from None
    if not amount >= 0 or math.isinf(amount):
        raise UnlearnBenchError(f"bad tolerance {raw!r}: must be a finite number >= 0")
    return Tolerance(amount, relative)


def parse_tolerance_spec(spec: str | None) -> dict[str, Tolerance]:
    """``"forget/probability=0.02,forget_quality=rel:0.5"`` -> {pattern: Tolerance}."""
    out: dict[str, Tolerance] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        pattern, sep, tol = part.partition("=")
        if not sep or not pattern.strip():
            raise UnlearnBenchError(f"bad tolerance entry {part.strip()!r}: use METRIC=TOL")
        out[pattern.strip()] = parse_tolerance(tol)
    return out


def tolerance_for(metric: str, tolerances: dict[str, Tolerance]) -> tuple[str, Tolerance]:
    """The (pattern, tolerance) that applies to ``metric`` (module docstring for precedence)."""
    if metric in tolerances:
        return metric, tolerances[metric]
    globs = [
        p for p in tolerances if any(ch in p for ch in "*?[") and fnmatch.fnmatchcase(metric, p)
    ]
    if not globs:
        return "(none)", Tolerance(0.0)
    best = max(globs, key=lambda p: (len(p.replace("*", "")), p))
    return best, tolerances[best]


def row_id(row: Row) -> str:
    """The key that matches a row with its baseline: task, model, label, hyperparameters."""
    return " | ".join((row.task, row.model, row.label, row.hparams))


def baseline_from_rows(
    rows: list[Row], tolerances: dict[str, Tolerance], any_direction: bool = False
) -> dict[str, Any]:
    """The baseline's data; ``any_direction`` makes every metric ``better: either``.

    That is the guard for a project's own CI: any move beyond tolerance is a behaviour change
    to review, whichever way it goes.
    """
    entries: dict[str, Any] = {}
    for row in rows:
        entries[row_id(row)] = {
            key: {"value": cell.value, "version": cell.version,
                  "better": "either" if any_direction else BETTER[cell.higher_is_better]}
            for key, cell in row.metrics.items()
        }  # fmt: skip
    return {
        "format": FORMAT,
        "tolerances": {p: str(t) for p, t in tolerances.items()},
        "rows": entries,
    }


def write_baseline(
    path: Path, rows: list[Row], tolerances: dict[str, Tolerance], any_direction: bool = False
) -> None:
    """Write the rows' metrics and tolerances as a baseline YAML file."""
    import yaml

    if not rows:
        raise UnlearnBenchError("no finished runs to write a baseline from")
    data = baseline_from_rows(rows, tolerances, any_direction)
    text = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, width=100)
    atomic_write_text(path, HEADER + text)


def load_baseline(path: Path) -> dict[str, Any]:
    """A baseline file, checked for its format and keys."""
    data = load_yaml(path)
    if data.get("format") != FORMAT:
        raise UnlearnBenchError(f"{path}: not a baseline file (format must be {FORMAT!r})")
    unknown = sorted(set(data) - {"format", "tolerances", "rows"})
    if unknown:
        raise UnlearnBenchError(f"{path}: unknown key {unknown[0]!r}")
    for rid, metrics in (data.get("rows") or {}).items():
        for key, entry in (metrics or {}).items():
            if not isinstance(entry, dict) or entry.get("better") not in BETTER.values():
                raise UnlearnBenchError(
                    f"{path}: {rid} / {key}: needs 'value' and 'better: higher|lower|either'"
                )
    return data


@dataclass
class Finding:
    """One metric of one row against its baseline."""

    status: str  # "regressed", "improved", "ok", "new", "collapsed" (a row, not a metric)
    row: str
    metric: str
    baseline: float | None = None
    current: float | None = None
    allowed: float | None = None
    rule: str = ""
    reason: str = ""


def _clean(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def check_metric(
    rid: str, metric: str, entry: dict[str, Any], cell: Any, tolerances: dict[str, Tolerance]
) -> Finding:
    """Judge one metric of one row against its baseline entry."""
    base = _clean(entry.get("value"))
    finding = Finding("ok", rid, metric, base)
    if cell is None:
        finding.status, finding.reason = "regressed", "metric missing from the current runs"
        return finding
    finding.current = current = _clean(cell.value)
    if entry.get("version") != cell.version:
        finding.status = "regressed"
        finding.reason = f"metric version changed v{entry.get('version')} -> v{cell.version}; "
        finding.reason += "regenerate the baseline"
        return finding
    if base is None or current is None:
        if base is not None:
            finding.status, finding.reason = "regressed", "value became empty"
        elif current is not None:
            finding.status, finding.reason = "new", "baseline had no value"
        return finding
    pattern, tol = tolerance_for(metric, tolerances)
    finding.allowed, finding.rule = tol.allowed(base), f"{tol} from {pattern}"
    delta, better = current - base, entry["better"]
    worse = {"higher": delta < -finding.allowed, "lower": delta > finding.allowed}
    if worse.get(better, abs(delta) > finding.allowed):
        finding.status = "regressed"
        finding.reason = {"higher": "fell", "lower": "rose"}.get(better, "moved")
    elif abs(delta) > finding.allowed:
        finding.status, finding.reason = "improved", "beyond tolerance in the better direction"
    return finding


def compare_with_baseline(
    baseline: dict[str, Any], rows: list[Row], cli_tolerances: dict[str, Tolerance]
) -> list[Finding]:
    """Every baseline metric compared with the current rows."""
    tolerances = {p: parse_tolerance(t) for p, t in (baseline.get("tolerances") or {}).items()}
    tolerances.update(cli_tolerances)
    current = {row_id(r): r for r in rows}
    findings: list[Finding] = []
    for rid, metrics in sorted((baseline.get("rows") or {}).items()):
        row = current.get(rid)
        if row is None:
            findings.append(Finding("regressed", rid, "*", reason="row missing from the runs"))
            continue
        for metric, entry in sorted(metrics.items()):
            findings.append(check_metric(rid, metric, entry, row.metrics.get(metric), tolerances))
    for rid in sorted(set(current) - set(baseline.get("rows") or {})):
        findings.append(Finding("new", rid, "*", reason="row not in the baseline"))
    for rid, row in sorted(current.items()):
        if row.collapsed:
            c = row.collapsed
            reason = f"the model collapsed ({c.get('reason')} at {c.get('where')}); "
            findings.append(Finding("collapsed", rid, "*", reason=reason + "not a result"))
    return findings


def report(findings: list[Finding], verbose: bool = False) -> str:
    """A readable diff: regressions first, grouped by row; ``ok`` lines only when verbose."""
    counts = {
        s: sum(f.status == s for f in findings)
        for s in ("regressed", "collapsed", "improved", "ok", "new")
    }
    lines = [
        f"regress: {counts['regressed']} regressed, {counts['improved']} improved, "
        f"{counts['ok']} within tolerance, {counts['new']} new"
        + (f", {counts['collapsed']} collapsed" if counts["collapsed"] else "")
    ]
    order = {"collapsed": -1, "regressed": 0, "improved": 1, "new": 2, "ok": 3}
    shown = [f for f in findings if verbose or f.status != "ok"]
    last_row = None
    for f in sorted(shown, key=lambda f: (order[f.status], f.row, f.metric)):
        if f.row != last_row:
            lines.append(f"\n{f.row}")
            last_row = f.row
        text = f"  {f.status.upper():9} {f.metric}"
        if f.baseline is not None or f.current is not None:
            text += f": {fmt(f.baseline)} -> {fmt(f.current)}"
        if f.baseline is not None and f.current is not None and f.allowed is not None:
            text += f" (change {f.current - f.baseline:+.4g}, allowed {fmt(f.allowed)} = {f.rule})"
        if f.reason:
            text += f"  [{f.reason}]"
        lines.append(text)
    return "\n".join(lines) + "\n"
