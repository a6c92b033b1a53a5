"""Run every benchmark module (or those named) and write results under ``bench/results/``.

Each ``bench/bench_<name>.py`` defines ``run() -> dict`` returning JSON-able numbers plus a
``"summary"`` line. Results go to ``bench/results/<name>.json`` (with machine facts and a
timestamp) and one line per benchmark to ``bench/results/SUMMARY.md``. Timings are measured
here, never asserted in tests.

    python -m bench.run                 # all benchmarks
    python -m bench.run tofu_eval       # one
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    args = parser.parse_args(argv)
    names = args.names or available()
    RESULTS.mkdir(exist_ok=True)
    failures = 0
    for name in names:
        print(f"==> bench {name}", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            result = module.run()
        except Exception:  # a failing benchmark must not hide the others' numbers
            failures += 1
            traceback.print_exc()
            continue
        result = {
            "benchmark": name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_seconds": round(time.perf_counter() - start, 2),
            "machine": machine(),
            **result,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        _update_summary(name, result)
        print(f"    {result.get('summary', '')}", flush=True)
    return 1 if failures else 0


def _update_summary(name: str, result: dict) -> None:
    path = RESULTS / "SUMMARY.md"
    lines = path.read_text().splitlines() if path.is_file() else ["# Benchmark results", ""]
    lines = [line for line in lines if not line.startswith(f"- **{name}**")]
    lines.append(f"- **{name}** ({result['when']}): {result.get('summary', '')}")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
