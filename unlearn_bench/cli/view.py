"""The ``view`` command: write the results viewer's static site, optionally serve it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import ensure_dir


def cmd_view(args: argparse.Namespace) -> int:
    """Write the static results site of a runs folder, optionally serve it."""
    from unlearn_bench.viewer.site import build_site, serve

    runs_dir = Path(args.runs_dir)
    out = Path(args.out) if args.out else runs_dir / "_site"
    if out.resolve() == runs_dir.resolve():
        raise UnlearnBenchError("--out must not be the runs folder itself")
    published = Path(args.published_dir) if args.published_dir else None
    ensure_dir(out, "site folder")
    index = build_site(runs_dir, out, plots=not args.no_plots, published=published)
    print(f"site written: {index} (open it in a browser; no server needed)")
    if args.serve:
        serve(out, args.port)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``view`` on the main parser's subparsers."""
    p = sub.add_parser("view", help="write a browsable site of run records (--serve to serve it)")
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder of run records (any depth)")
    p.add_argument("--out", help="site folder (default: RUNS_DIR/_site)")
    p.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="with --serve (0: any free port)")
    p.add_argument("--no-plots", action="store_true", help="skip drawing the figures")
    p.add_argument("--published-dir", help="published tables (default: leaderboards/published)")
    p.set_defaults(func=cmd_view)
