"""The ``unlearn-bench`` command: one argparse parser, one module per command family.

- ``cli.run``: run | eval | score | protocol
- ``cli.catalog``: ls | validate
- ``cli.reference``: reference import | export
- ``cli.results``: leaderboard | compare | regress | compare-runs | sweep
- ``cli.view``: view
- ``cli.probe``: probe
- ``cli.cost``: cost

Heavy libraries are imported inside the commands that need them, so ``--help`` and ``ls``
start fast. Any UnlearnBenchError is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from unlearn_bench.cli import catalog, cost, probe, reference, results, run, view
from unlearn_bench.errors import UnlearnBenchError

FAMILIES = (run, catalog, reference, results, view, probe, cost)


def build_parser() -> argparse.ArgumentParser:
    """The one parser: every command family registers its subcommands on it."""
    parser = argparse.ArgumentParser(prog="unlearn-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors are one line and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    from unlearn_bench import numerics

    try:
        numerics.pin()  # before anything imports torch: its kernels are chosen at first use
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "unlearn-bench: interrupted; rerun the same command with the same --run-id to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
