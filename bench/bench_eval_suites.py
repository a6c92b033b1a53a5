"""Whole evaluation suites, measured whole: ``unlearn-bench eval`` on the base default model.

Each case is one ``(task, backend)`` pair (TOFU, MUSE-News, the LLMU scenarios) run as its own
process (the real CLI, the real
records), on the base SmolLM2-135M-Instruct with ``--no-cache``. The phase breakdown comes from
the run record (``stages.evaluate.backend_stats.seconds``: load, engine start, log-probs,
gradient norms, generation, scoring); "other" is the command's wall time minus those phases
(start-up, data, the rest). Peak memory is the child process's (vLLM's engine process is its
own and not counted). Each case's runs accumulate in ``bench/results/eval_suites.json``, so a
second run is reported beside the first, never over it.

    BENCH_SUITE=tofu_forget10:default,llmu_harmful:default python -m bench.run eval_suites

``BENCH_LIMIT=N`` cuts every set to N items (a smoke check; recorded in the command).
``BENCH_SUITE`` picks cases (default: forget01 and forget10 with ``hf`` and the default
backend; hf takes hours). ``vllm`` alone cannot run TOFU (it has no vocabulary statistics or
gradients): such a case is recorded as not applicable, with the reason. ``BENCH_DATA`` is the
shared data folder (default ``../shared/data``). ``BENCH_KEEP_RUNS=DIR`` keeps each case's run
folder under DIR (``<task>-<backend>-<time>``), so two backends' samples and results can be
compared afterwards; by default they go to a temporary folder.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "eval_suites.json"
DATA = Path(os.environ.get("BENCH_DATA", ROOT.parent / "shared" / "data"))
# Where each task family reads its local copy under DATA (as the configs/ files do).
DATA_SUBDIR = {"tofu_": "tofu", "muse_news": "muse_news", "llmu_": "."}
# open-unlearning's whole TOFU forget01 evaluation of SmolLM2-135M on this kind of machine
# (2 CPU cores, fp32), as measured for issue 19.
OPEN_UNLEARNING_FORGET01_S = 3409
DEFAULT_CASES = "tofu_forget01:default,tofu_forget01:hf,tofu_forget10:default,tofu_forget10:hf"
NOT_APPLICABLE = {
    ("tofu_", "vllm"): "backend vllm alone cannot run TOFU: no vocabulary statistics or gradients",
}


def data_dir(task: str) -> Path:
    """The task's local data folder under DATA."""
    sub = next((d for prefix, d in DATA_SUBDIR.items() if task.startswith(prefix)), None)
    if sub is None:
        raise ValueError(f"no local data folder known for task {task!r}")
    return (DATA / sub).resolve()


def run_case(task: str, backend: str) -> dict:
    """One whole-suite evaluation in a fresh process; its wall time and phases."""
    for (prefix, name), why in NOT_APPLICABLE.items():
        if task.startswith(prefix) and backend == name:
            return {"not_applicable": why}
    keep = os.environ.get("BENCH_KEEP_RUNS")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(Path(keep, f"{task}-{backend}-{time.strftime('%H%M%S')}")) if keep else scratch
        argv = [
            sys.executable, "-m", "unlearn_bench", "eval", "--task", task,
            "--model", "smollm2-135m", "--data-dir", str(data_dir(task)), "--no-cache",
            "--runs-dir", tmp, "--run-id", "bench",
        ]  # fmt: skip
        if backend != "default":
            argv += ["--backend", backend]
        if os.environ.get("BENCH_LIMIT"):  # a smoke check of the harness, not a suite
            argv += ["--limit", os.environ["BENCH_LIMIT"]]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        if done.returncode != 0:  # said in the results, and the other cases still run
            return {"failed": f"exit {done.returncode} after {wall:.0f} s: {' '.join(argv[1:])}"}
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        (header_path,) = Path(tmp, "bench").glob("*/header.json")
        header = json.loads(header_path.read_text())
    stage = header["stages"]["evaluate"]
    phases = {k: round(v, 1) for k, v in stage["backend_stats"]["seconds"].items()}
    return {
        "command": " ".join(argv[1:]),
        "wall_s": round(wall, 1),
        "phases_s": {**phases, "other": round(wall - sum(phases.values()), 1)},
        "routing": header.get("routing"),
        "backend": header["config"]["backend"],
        "generated_tokens": stage["backend_stats"]["extra"].get("generated_tokens"),
        "peak_rss_gb_largest_child_so_far": round(peak_kib / 2**20, 2),
        "git_commit": header.get("git_commit"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run() -> dict:
    """Run the chosen cases and add each result to the accumulated file."""
    cases = [c.split(":") for c in os.environ.get("BENCH_SUITE", DEFAULT_CASES).split(",")]
    previous = json.loads(OUT.read_text()).get("cases", {}) if OUT.is_file() else {}
    lines = []
    for task, backend in cases:
        print(f"    {task} {backend}", flush=True)
        result = run_case(task, backend)
        limit = os.environ.get("BENCH_LIMIT")
        key = f"{task}:{backend}" + (f":limit{limit}" if limit else "")  # never mixed with whole
        entry = previous.setdefault(key, {"runs": []})
        if "not_applicable" in result or "failed" in result:
            entry.update(result)
            lines.append(f"{key} {'n/a' if 'not_applicable' in result else 'FAILED'}")
            continue
        entry.pop("failed", None)  # an earlier failure is superseded by this run
        entry["runs"].append(result)
        walls = [r["wall_s"] for r in entry["runs"]]
        if task == "tofu_forget01" and not limit:
            entry["speedup_vs_open_unlearning"] = [
                round(OPEN_UNLEARNING_FORGET01_S / w, 2) for w in walls
            ]
        lines.append(f"{key} " + "/".join(f"{w:.0f}" for w in walls) + " s")
        # Saved after every case: an interrupted series keeps the cases it finished.
        OUT.write_text(json.dumps({"cases": previous}, indent=2) + "\n")
    return {
        "open_unlearning_forget01_s": OPEN_UNLEARNING_FORGET01_S,
        "cases": previous,
        "summary": "whole suites (wall, every run): " + "; ".join(lines),
    }
