"""MUSE-News evaluation of SmolLM2-135M-Instruct on the local data (../shared/data/muse_news).

Evaluates the model as given (no finetuning: the local copy lacks the raw retain splits) on a
fixed subset, the first ``SUBSET[set]`` items of each eval set, sized to finish in under 4
minutes on 2 quiet CPU cores. The full task (100 VerbMem prompts of ~920 tokens + 128
generated, 200 KnowMem questions with ~330-token in-context prompts, 200 PrivLeak texts of
~1,850 tokens) is too long to time routinely: a 16/40+40/32+32 subset already took 631 s
here (this one: 162 s), so the full task takes roughly half an hour or more. The response
cache is off, so every number is a fresh forward pass. PrivLeak is relative to MUSE's published
retrain AUC (there is no retrained model of ours to compare with).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

SUBSET = {
    "verbmem_forget": 5,
    "knowmem_forget": 12,
    "knowmem_retain": 12,
    "privleak_forget": 8,
    "privleak_holdout": 8,
}
DATA = Path(
    os.environ.get("MUSE_NEWS_DIR", Path(__file__).resolve().parents[2] / "shared/data/muse_news")
)


def _task_file(folder: Path) -> Path:
    """The shipped task with per-set limits (the one inheritance mechanism: ``include``)."""
    shipped = Path(__file__).resolve().parents[1] / "tasks" / "muse_news" / "muse_news.yaml"
    lines = [f"include: {shipped}", "name: muse_news", "evaluation:"]
    lines += [f"  {name}: {{limit: {n}}}" for name, n in SUBSET.items()]
    path = folder / "muse_news_subset.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run() -> dict:
    from unlearn_bench.config import RunConfig
    from unlearn_bench.runner import run_protocol

    if not DATA.is_dir():
        raise FileNotFoundError(f"MUSE-News local data not found at {DATA} (set MUSE_NEWS_DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig.from_dict(
            {"task": str(_task_file(Path(tmp))), "model": "smollm2-135m", "backend": "hf",
             "data_dir": str(DATA), "runs_dir": f"{tmp}/runs", "run_id": "bench",
             "finetune": None, "unlearn": [], "retain_model": False, "cache": False,
             "eval": {"batch_size": 4}}
        )  # fmt: skip
        start = time.perf_counter()
        _, [record], seconds = run_protocol(config, echo=lambda _: None)
        wall = time.perf_counter() - start
        results = record.results()["muse_news"]
        stats = record.header["stages"]["evaluate"]["backend_stats"]
    keep = ("value", "ci", "n", "note")
    metrics = {key: {k: e[k] for k in keep if e.get(k) is not None} for key, e in results.items()}
    value = {k: results[k]["value"] for k in results}
    summary = (
        f"SmolLM2-135M MUSE-News subset {SUBSET['verbmem_forget']}/{SUBSET['knowmem_forget']}+"
        f"{SUBSET['knowmem_retain']}/{SUBSET['privleak_forget']}+{SUBSET['privleak_holdout']}: "
        f"VerbMem {value['verbmem_forget/verbmem_f']:.1f}, "
        f"KnowMem forget {value['knowmem_forget/knowmem_f']:.1f}, "
        f"retain {value['knowmem_retain/knowmem_r']:.1f}, "
        f"PrivLeak {value['privleak']:.1f} (AUC {value['privleak_auc']:.3f}, vs MUSE constant); "
        f"evaluate {seconds.get('evaluate target', float('nan')):.0f} s, total {wall:.0f} s"
    )
    return {
        "subset": SUBSET,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "backend_stats": stats,
        "metrics": metrics,
        "summary": summary,
    }
