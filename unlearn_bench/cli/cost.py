"""The ``cost`` command: each stage's wall time, tokens, FLOPs and memory, from run records."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.compute import AGAINST, HARMFUL_METRICS
from unlearn_bench.train.cost import FORMULA

COLUMNS = ("run", "stage", "wall_s", "tokens", "flops", "peak_rss_mib", "device", "procs")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int) and value >= 10**6:
        return f"{value:.3g}"
    return str(value)


def cost_rows(header: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per costed stage of a run header: its training stage, then its evaluation."""
    stages = []
    train = (header.get("stage_info") or {}).get("cost")
    if train:
        stages.append(("train" if header.get("role") != "unlearned" else "unlearn", train))
    evaluate = (header.get("stages") or {}).get("evaluate", {}).get("cost")
    if evaluate:
        stages.append(("evaluate", evaluate))
    rows = []
    for name, c in stages:
        rss = c.get("peak_rss_bytes")
        rows.append({
            "run": header.get("label") or header.get("run_id"), "stage": name,
            "wall_s": c.get("wall_s"), "tokens": c.get("forward_tokens"), "flops": c.get("flops"),
            "peak_rss_mib": round(rss / 2**20) if rss else None, "device": c.get("device"),
            "procs": c.get("processes"),
        })  # fmt: skip
    return rows


def cmd_cost(args: argparse.Namespace) -> int:
    """Print one line per stage of every run record under the given folders."""
    from unlearn_bench.runs import find_runs

    rows: list[dict[str, Any]] = []
    for folder in args.runs:
        records = find_runs(Path(folder))
        if not records:
            raise UnlearnBenchError(f"{folder} holds no run record (no header.json below it)")
        for record in records:
            rows += cost_rows(record.header)
    if not rows:
        raise UnlearnBenchError("these runs hold no cost records (made before cost accounting?)")
    table = [list(COLUMNS)] + [[_fmt(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    print(f"flops: {FORMULA}; '-' = withheld (LoRA without adapter; eval on vLLM/fake)")
    if args.out:
        for path in _write_comparison(args):
            print(path)
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _write_comparison(args: argparse.Namespace) -> list[Path]:
    """Issue 16's table and figure: each task's metrics against its training compute."""
    from unlearn_bench.leaderboard.compare import published_dir
    from unlearn_bench.leaderboard.compute import compute_lines
    from unlearn_bench.leaderboard.compute_page import papers_for, write_compute
    from unlearn_bench.leaderboard.tables import rows_by_task
    from unlearn_bench.runs import find_runs

    records = [r for folder in args.runs for r in find_runs(Path(folder))]
    by_task = rows_by_task(records, args.task)
    if not by_task:
        of_task = f" of task {args.task!r}" if args.task else ""
        raise UnlearnBenchError(f"no finished runs{of_task} under {', '.join(args.runs)}")
    metrics, against = _names(args.metrics), _names(args.against)
    claims = Path(args.published_dir) if args.published_dir else published_dir() / "compute"
    written: list[Path] = []
    for task, rows in by_task.items():
        lines, refs = compute_lines(rows, records, against)
        papers = papers_for(task, claims)
        written += write_compute(task, lines, refs, metrics, papers, Path(args.out))
    return written


def add_commands(sub: Any) -> None:
    """Register ``cost`` on the main parser's subparsers."""
    p = sub.add_parser("cost", help="per-stage cost (wall s, tokens, FLOPs, peak RSS) of runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run group or run folders")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="also write <task>.compute.md/.json and a figure: metrics against training compute",
    )
    p.add_argument("--task", help="with --out: only this task")
    p.add_argument("--metrics", default=",".join(HARMFUL_METRICS), help="comma-separated")
    p.add_argument(
        "--against",
        default=",".join(AGAINST),
        help="reference methods (registry name or label) for the %% columns",
    )
    p.add_argument(
        "--published-dir",
        help="folder of paper compute claims (default: leaderboards/published/compute)",
    )
    p.set_defaults(func=cmd_cost)
