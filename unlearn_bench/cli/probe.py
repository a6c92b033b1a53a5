"""The ``probe`` command: robustness probes on the models of a finished run group."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_probe(args: argparse.Namespace) -> int:
    """Probe a finished group's target and unlearned models; write the robustness tables."""
    from unlearn_bench.leaderboard.robustness import write_robustness
    from unlearn_bench.probes.driver import probe_group

    group = Path(args.run)
    records = probe_group(group, args.probes, echo=lambda m: print(m, flush=True))
    print(f"{len(records)} probe records in {group}")
    for path in write_robustness(group.parent, Path(args.leaderboards_dir)):
        print(path)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``probe`` on the main parser's subparsers."""
    p = sub.add_parser("probe", help="robustness probes (relearn-K, intB, paraphrase, prefix, "
                       "leak-N) on a finished run group")  # fmt: skip
    p.add_argument("run", help="a run group folder (runs/<group>)")
    p.add_argument("--probe", dest="probes", action="append", required=True,
                   help="probe name, repeatable: relearn-20, int8, int4, paraphrase, prefix, "
                   "leak-8")  # fmt: skip
    p.add_argument("--leaderboards-dir", default="leaderboards")
    p.set_defaults(func=cmd_probe)
