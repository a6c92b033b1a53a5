"""The ``reference`` command: import a published log as a reference record, or export values.

``unlearn-bench reference import LOG|RUN --task T --out DIR`` writes a folder that
``--reference`` accepts like a run; ``reference export RUN --task T --out FILE.json`` writes the
reference values of a run (or log) as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_reference(args: argparse.Namespace) -> int:
    """Import a reference log or run as a reference record, or export its values."""
    from unlearn_bench.paths import atomic_write_json
    from unlearn_bench.references import load_reference, write_reference_record

    values = load_reference(args.source, args.task)
    if args.action == "import":
        print(write_reference_record(values, Path(args.out), args.task))
    else:
        atomic_write_json(Path(args.out), values.to_json())
        print(args.out)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``reference`` on the main parser's subparsers."""
    p = sub.add_parser("reference", help="import / export reference (retain-model) values")
    p.add_argument("action", choices=["import", "export"])
    p.add_argument("source", help="a run folder, open-unlearning *_EVAL.json or TOFU log")
    p.add_argument("--task", required=True, help="task name the values belong to")
    p.add_argument("--out", required=True, help="import: record folder; export: JSON file")
    p.set_defaults(func=cmd_reference)
