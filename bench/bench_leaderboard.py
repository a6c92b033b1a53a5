"""Time the result side on a large synthetic set of run records (no model involved).

Writes 480 finished run records (2 tasks x 8 methods x 15 hyperparameter settings x 2 seeds,
24 metrics each, plus a 50-step training log per run) into a temporary folder, then times:
reading them into leaderboard rows, writing all five table formats, writing a regression
baseline and checking the runs against it, and drawing every figure.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

TASKS = ("bench_tofu", "bench_muse")
METHODS = ("grad_ascent", "grad_diff", "npo", "simnpo", "idk_dpo", "flat", "rmu", "ga_mismatch")
LRS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5)
EPOCHS = (1.0, 3.0, 5.0)
SETS = ("forget", "retain", "holdout", "real_authors", "world_facts")
SET_METRICS = ("probability", "rouge_l_recall", "truth_ratio", "exact_memorisation")


def _results(rng: random.Random) -> dict:
    out = {
        f"{s}/{m}": {"value": rng.random(), "stderr": rng.random() / 50, "n": 100,
                     "higher_is_better": True, "version": 1}
        for s in SETS for m in SET_METRICS
    }  # fmt: skip
    for name in ("forget_quality", "model_utility", "privleak", "retain_utility"):
        out[name] = {"value": rng.random(), "stderr": None, "n": None,
                     "higher_is_better": True, "version": 1}  # fmt: skip
    return out


def make_runs(root: Path) -> int:
    rng = random.Random(0)
    count = 0
    for task in TASKS:
        for method in METHODS:
            for lr in LRS:
                for epochs in EPOCHS:
                    for seed in (0, 1):
                        run = root / f"{task}-{method}-{lr:g}-{epochs:g}-s{seed}" / method
                        run.mkdir(parents=True)
                        header = {
                            "run_id": f"{run.parent.name}/{method}", "status": "finished",
                            "created": f"2025-01-01T00:00:{count:06d}", "label": method,
                            "role": "unlearned", "seed": seed,
                            "task": {"name": task, "version": 1, "fingerprint": "f" * 16},
                            "method": {"method": method, "lr": lr, "epochs": epochs,
                                       "batch_size": 4, "args": {}},
                            "config": {"model": "smollm2-135m"},
                        }  # fmt: skip
                        (run / "header.json").write_text(json.dumps(header))
                        (run / "results.json").write_text(json.dumps({task: _results(rng)}))
                        log = "".join(
                            json.dumps({"step": s, "loss": -s * lr * 1e4, "forget_nll": s / 10})
                            + "\n"
                            for s in range(1, 51)
                        )
                        (run / "train_log.jsonl").write_text(log)
                        count += 1
    return count


def run() -> dict:
    from unlearn_bench.leaderboard.plots import write_plots
    from unlearn_bench.leaderboard.regress import (
        compare_with_baseline,
        load_baseline,
        write_baseline,
    )
    from unlearn_bench.leaderboard.tables import FORMATS, rows_from_records, write_leaderboards
    from unlearn_bench.runs import find_runs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_runs = make_runs(root / "runs")
        timings = {}
        start = time.perf_counter()
        rows = rows_from_records(find_runs(root / "runs"))
        timings["rows_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tables = write_leaderboards(root / "runs", root / "out", formats=FORMATS)
        timings["tables_s"] = time.perf_counter() - start
        start = time.perf_counter()
        write_baseline(root / "baseline.yaml", rows, {})
        findings = compare_with_baseline(load_baseline(root / "baseline.yaml"), rows, {})
        timings["regress_s"] = time.perf_counter() - start
        start = time.perf_counter()
        figures = write_plots(find_runs(root / "runs"), root / "out")
        timings["plots_s"] = time.perf_counter() - start
    result = {
        "runs": n_runs, "rows": len(rows), "table_files": len(tables),
        "metrics_checked": len(findings), "figures": len(figures),
        **{k: round(v, 2) for k, v in timings.items()},
    }  # fmt: skip
    result["summary"] = (
        f"{n_runs} runs -> {len(rows)} rows: rows {result['rows_s']} s, 5 formats x "
        f"{len(TASKS)} tasks {result['tables_s']} s (includes re-reading), regress "
        f"{len(findings)} metrics {result['regress_s']} s, {len(figures)} figures "
        f"{result['plots_s']} s"
    )
    return result
