"""The real ``unlearn-bench`` CLI in its own process, paused just before it publishes a stage.

``python paused_cli.py READY GO ARGV...``: runs ``cli.main(ARGV)``; when a training stage has
finished its work folder and would publish it, writes its pid to READY and waits until GO
exists. The lock tests use it to hold a run group and a cache stage at a known point.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from unlearn_bench import numerics

numerics.pin()  # as the CLI does, before torch is imported: checkpoint keys include it

from unlearn_bench.cli import main  # noqa: E402
from unlearn_bench.train import stages  # noqa: E402


def _run() -> int:
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    publish = stages.publish

    def paused(tmp: Path, final: Path, recipe: dict[str, Any]) -> None:
        ready.write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("paused_cli: never released")
            time.sleep(0.05)
        publish(tmp, final, recipe)

    stages.publish = paused  # type: ignore[assignment]
    return main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(_run())
