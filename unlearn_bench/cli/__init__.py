"""The ``unlearn-bench`` command: one argparse parser, one module per command family.

- ``cli.run``: run | eval | score | protocol
- ``cli.catalog``: ls | validate
- ``cli.reference``: reference import | export
- ``cli.results``: leaderboard | compare | regress | compare-runs | sweep
- ``cli.view``: view
- ``cli.probe``: probe
- ``cli.cost``: cost

Heavy libraries are imported inside the commands that need them, so ``--help`` and ``ls``
start fast. Any UnlearnBenchError, and any OSError the file system raises, is printed as one
line and exits with status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

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
    from unlearn_bench.train.distributed import check_launch

    try:
        numerics.pin()  # before anything imports torch: its kernels are chosen at first use
        check_launch()  # a launcher setup this machine cannot train with stops here, in one line
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    previous = _on_sigterm_interrupt()
    try:
        return int(args.func(args))
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused (disk full, no permission, a file where a folder belongs):
        # bad input of its own kind, reported like the rest. A run says "failed" in its records.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"unlearn-bench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(
            f"unlearn-bench: {what}; rerun the same command with the same --run-id to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds as Ctrl-C does."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _on_sigterm_interrupt() -> Any:
    """Make SIGTERM (a scheduler's or ``timeout``'s stop) unwind like Ctrl-C; the old handler.

    Killed outright, a run left its group saying "running" with no message and its stage's
    temporary files for the next run to find; unwinding runs every cleanup and lock release,
    marks the group "interrupted" and prints how to resume.
    """
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    sys.exit(main())
