"""The result-side commands: ``leaderboard``, ``compare``, ``regress``, ``compare-runs``, ``sweep``.

Kept apart from ``cli.py`` so the shared entry point only registers them. Like every command,
they import their heavy parts lazily and report a bad input as one UnlearnBenchError line.
Exit status: 0 ok, 1 a regression (``regress``) or a failed cell (``sweep``), 2 a bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import ensure_dir


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Write leaderboards of the finished runs under a folder, in the chosen formats."""
    from unlearn_bench.leaderboard.tables import FORMATS, write_leaderboards

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise UnlearnBenchError(f"unknown format {bad[0]!r}; known: {', '.join(FORMATS)}")
    ensure_dir(Path(args.out), "leaderboards folder")
    written = write_leaderboards(
        Path(args.runs_dir),
        Path(args.out),
        args.task,
        formats=formats,
        plots=args.plots,
        cost=args.cost,
    )
    if not written:
        of_task = f" of task {args.task!r}" if args.task else ""
        raise UnlearnBenchError(f"no finished runs{of_task} under {args.runs_dir}")
    from unlearn_bench.leaderboard.robustness import write_robustness

    written += write_robustness(Path(args.runs_dir), Path(args.out))  # groups with probe runs
    for path in written:
        print(path)
    return 0


def _rows(runs_dir: str, task: str | None) -> list[Any]:
    from unlearn_bench.leaderboard.tables import rows_by_task
    from unlearn_bench.runs import find_runs

    by_task = rows_by_task(find_runs(Path(runs_dir)), task)
    return [row for rows in by_task.values() for row in rows]


def cmd_compare(args: argparse.Namespace) -> int:
    """Our rows beside a published table's, or the list of published tables."""
    from unlearn_bench.leaderboard import compare

    folder = Path(args.published_dir) if args.published_dir else compare.published_dir()
    if not args.tables:
        print(compare.list_tables(folder), end="")
        return 0
    pages = []
    for name in args.tables:
        table = compare.load_published(compare.find_published(name, folder))
        task = args.task or table.task
        if not task:
            raise UnlearnBenchError(f"published table {table.name} names no task; pass --task")
        rows = _rows(args.runs_dir, task)
        if not rows:
            raise UnlearnBenchError(f"no finished runs of task {task!r} under {args.runs_dir}")
        pages.append(compare.to_markdown(table, rows, task, args.include_unverified))
    text = "\n".join(pages)
    print(text, end="")
    if args.out:
        from unlearn_bench.paths import atomic_write_text

        atomic_write_text(Path(args.out), text)
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    """Check rows against a baseline file (exit 1 on a regression), or write one."""
    from unlearn_bench.leaderboard import regress

    tolerances = regress.parse_tolerance_spec(args.tolerance)
    rows = _rows(args.runs_dir, args.task)
    if args.write_baseline:
        regress.write_baseline(Path(args.write_baseline), rows, tolerances, args.any_direction)
        print(f"baseline written: {args.write_baseline} ({len(rows)} rows)")
        return 0
    if not args.baseline:
        raise UnlearnBenchError("give --baseline FILE to check, or --write-baseline FILE")
    if not rows:
        raise UnlearnBenchError(f"no finished runs under {args.runs_dir} to check")
    baseline = regress.load_baseline(Path(args.baseline))
    findings = regress.compare_with_baseline(baseline, rows, tolerances)
    print(regress.report(findings, verbose=args.verbose), end="")
    return 1 if any(f.status == "regressed" for f in findings) else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or list, with --dry-run) every cell of a hyperparameter grid."""
    from unlearn_bench.protocols import sweep as sw

    plan = sw.load_sweep(args.grid, args.runs_dir)
    print(f"sweep {plan.name}: {len(plan.cells)} cells -> {plan.runs_dir / plan.name}")
    if args.dry_run:
        for cell in plan.cells:
            print(f"  {cell.name}: {cell.config.unlearn[0]}")
        return 0
    echo = lambda m: print(m, flush=True)  # noqa: E731
    if args.executor == "ray":
        outcomes = sw.run_sweep_ray(
            plan, args.ray_address, args.ray_cpus_per_cell, args.ray_gpus_per_cell, echo
        )
    else:
        outcomes = sw.run_sweep(plan, echo)
    print("\n" + sw.summary(plan, outcomes), end="")
    if any(o.status != "failed" for o in outcomes):
        from unlearn_bench.leaderboard.tables import write_leaderboards

        written = write_leaderboards(plan.runs_dir, plan.leaderboards_dir)
        print("Leaderboards written: " + ", ".join(str(p) for p in written))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_compare_runs(args: argparse.Namespace) -> int:
    """Explain where two run records differ (exit 1 when they do)."""
    from unlearn_bench.leaderboard.compare_runs import explain

    report, differ = explain(Path(args.a), Path(args.b), args.tolerance)
    print(report)
    return 1 if differ else 0


def add_commands(sub: Any) -> None:
    """Register the result commands on the main parser's subparsers."""
    p = sub.add_parser("leaderboard", help="regenerate leaderboard tables from run records")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", default="leaderboards")
    p.add_argument("--task")
    p.add_argument("--formats", default="md,csv,html,tex,json", help="comma-separated")
    p.add_argument("--plots", action="store_true", help="also write PNG+SVG figures")
    p.add_argument(
        "--cost",
        action="store_true",
        help="add train_/eval_ wall_s and flops columns (making and evaluating each model)",
    )
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("compare", help="our runs beside a published table (no TABLE: list them)")
    p.add_argument("tables", nargs="*", help="published table name or YAML path")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--task", help="our task to compare (default: the table's own 'task')")
    p.add_argument("--published-dir", help="default: leaderboards/published")
    p.add_argument("--out", help="also write the Markdown here")
    p.add_argument(
        "--include-unverified",
        action="store_true",
        help="also take differences for published rows from a single secondary source or "
        "disputed ones (they stay labelled unverified)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("regress", help="fail (exit 1) when a metric regresses vs a baseline")
    p.add_argument("--baseline", help="baseline YAML to check against")
    p.add_argument("--write-baseline", metavar="FILE", help="write a baseline from the runs")
    p.add_argument("--tolerance", help="e.g. 'forget/probability=0.02,forget_quality=rel:0.5'")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--task", help="only rows of this task")
    p.add_argument("--verbose", action="store_true", help="also list metrics within tolerance")
    p.add_argument(
        "--any-direction",
        action="store_true",
        help="with --write-baseline: every metric 'better: either' (any move fails)",
    )
    p.set_defaults(func=cmd_regress)

    p = sub.add_parser(
        "compare-runs", help="two runs or run groups: metrics that differ, and why (exit 1 if any)"
    )
    p.add_argument("a", help="run folder or run group folder")
    p.add_argument("b", help="run folder or run group folder")
    p.add_argument("--tolerance", type=float, default=0.0, help="absolute; default 0 (exact)")
    p.set_defaults(func=cmd_compare_runs)

    p = sub.add_parser("sweep", help="run a grid of methods/hyperparameters from one YAML")
    p.add_argument("grid", help="sweep YAML file")
    p.add_argument("--runs-dir", help="override base.runs_dir")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", help="Ray cluster address (default auto; 'local' to start one)")
    p.add_argument("--ray-cpus-per-cell", type=float, default=1.0)
    p.add_argument("--ray-gpus-per-cell", type=float, default=0.0)
    p.add_argument("--dry-run", action="store_true", help="list the cells and stop")
    p.set_defaults(func=cmd_sweep)
