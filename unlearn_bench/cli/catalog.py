"""The commands about what exists: ``ls`` (tasks, methods, metrics, backends), ``validate``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError


def cmd_ls(args: argparse.Namespace) -> int:
    """List the registered names (from the registry index: no torch import)."""
    from unlearn_bench.backends.base import BACKENDS
    from unlearn_bench.methods import METHODS
    from unlearn_bench.metrics import DERIVED_METRICS, METRICS
    from unlearn_bench.tasks import all_task_files

    what = args.what
    if what in ("tasks", "all"):
        print("tasks:   " + ", ".join(p.stem for p in all_task_files()))
    if what == "methods":
        for name in METHODS.names():
            print(f"{name:<16} {method_source(name)}")
    elif what == "all":
        print("methods: " + ", ".join(METHODS.names()))
    if what in ("metrics", "all"):
        print("metrics: " + ", ".join(METRICS.names()))
        print("derived: " + ", ".join(DERIVED_METRICS.names()))
    if what in ("backends", "all"):
        print("backends: " + ", ".join(BACKENDS.names()))
    return 0


def method_source(name: str) -> str:
    """First line of a method module's docstring (its paper), read without importing it."""
    import ast
    import importlib.util

    from unlearn_bench.registry.index import INDEX

    module = INDEX["method"][name].split(":")[0]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def cmd_validate(args: argparse.Namespace) -> int:
    """Check task files strictly, against the schema and the metric and judge registries."""
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.tasks import all_task_files

    files = [Path(f) for f in args.files] or all_task_files()
    failures = 0
    for path in files:
        try:
            spec = parse_task(path)
            print(f"ok    {path}  ({spec.name} v{spec.version})")
        except UnlearnBenchError as exc:
            failures += 1
            print(f"FAIL  {exc}")
    if failures:
        raise UnlearnBenchError(f"{failures} of {len(files)} task files are invalid")
    return 0


def add_commands(sub: Any) -> None:
    """Register ls | validate on the main parser's subparsers."""
    p = sub.add_parser("ls", help="list tasks, methods, metrics, backends")
    p.add_argument(
        "what", nargs="?", default="all", choices=["all", "tasks", "methods", "metrics", "backends"]
    )
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("validate", help="check task files strictly")
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_validate)
