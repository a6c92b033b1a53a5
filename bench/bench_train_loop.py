"""Training throughput of the harness against a minimal hand-written PyTorch loop (issue 19).

Gradient ascent on SmolLM2-135M-Instruct (float32, CPU), batch size ``BATCH``, ``STEPS`` optimiser
steps, the same seeded batches (``train.parts.batch_source``, as the unlearn stage builds them)
and the same loss (``GradAscent.loss``), three ways:

- ``hand``: forward, loss, backward, AdamW step, zero_grad; nothing else.
- ``loop``: ``train.loop.train`` with that loss alone (accelerate's accumulate / backward,
  the cross-process NaN check, the per-step log row and token count).
- ``stage``: the whole ``train.stages.unlearn`` stage (adds the collapse watch's statistics,
  the token tally's hooks, the control probes and the checkpoint).

Each runs twice, in the order hand, loop, stage, stage, loop, hand, so a load that drifts during the
benchmark hits all three alike; a variant's tokens/s is its two rounds' tokens over their seconds,
and each round's figure is kept. Timing skips step 1 (warm-up) and runs from the end of step 1 to
the end of the last step (the loop and stage times come from their own ``train_log.jsonl``). Tokens:
non-pad forget tokens trained on, the same count in all three (checked). Indicative only on a shared
machine.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS, BATCH, LR = 8, 2, 1e-5
ORDER = ("hand", "loop", "stage", "stage", "loop", "hand")  # ABC CBA: drift in load cancels


def _from_log(log: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    seconds = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    tokens = sum(r["tokens"] for r in rows[1:])
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def _hand(model: Any, source: Any, method: Any, weight_decay: float) -> dict[str, float]:
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=weight_decay)
    tokens, begin = 0, 0.0
    for step in range(1, STEPS + 1):
        (batch,) = source.step(1, [0])
        loss = method.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 1:
            begin = time.perf_counter()
        else:
            tokens += int(batch["forget"].attention_mask.sum())
    seconds = time.perf_counter() - begin
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def run() -> dict:
    """Train GA three ways on the same batches; tokens/s each and the ratio to the hand loop."""
    import torch

    from unlearn_bench.config import RunConfig
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.methods import build_method
    from unlearn_bench.models import resolve_model
    from unlearn_bench.tasks import find_task, load_task_data
    from unlearn_bench.train.loop import seed_everything, train
    from unlearn_bench.train.parts import batch_source
    from unlearn_bench.train.stages import StageInputs, _load_for_training, unlearn

    path = resolve_model("smollm2-135m").load_path
    spec = parse_task(find_task("synthetic_people"))
    splits = load_task_data(spec, None)
    entry = {"method": "grad_ascent", "lr": LR, "batch_size": BATCH, "max_steps": STEPS}
    ucfg = RunConfig.from_dict({"task": spec.name, "unlearn": [entry]}).unlearn[0]
    method_cls, method_config = build_method(ucfg.method, ucfg.args)
    needs = method_cls.needs_for(method_config)

    def fresh() -> tuple[Any, Any, Any]:
        model, tokenizer = _load_for_training(path, False)
        source = batch_source(spec, tokenizer, splits, needs, method_config, BATCH,
                              ucfg.max_length, 0)  # fmt: skip
        return model, source, method_cls(method_config, None)

    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ORDER}
    old_cache = os.environ.get("UNLEARN_BENCH_CACHE")
    try:
        for i, name in enumerate(ORDER):
            with tempfile.TemporaryDirectory(prefix="bench-train-loop-") as tmp:
                seed_everything(0)
                if name == "stage":  # a fresh cache each round: never reuse a checkpoint
                    os.environ["UNLEARN_BENCH_CACHE"] = tmp
                    ckpt = unlearn(StageInputs(path, f"bench{i}", spec, splits, 0), ucfg)
                    rounds[name].append(_from_log(ckpt.log_path))
                    continue
                model, source, method = fresh()
                if name == "hand":
                    rounds[name].append(_hand(model, source, method, ucfg.weight_decay))
                else:
                    train(model, method.loss, source, STEPS, ucfg, seed=0, out_dir=Path(tmp))
                    rounds[name].append(_from_log(Path(tmp) / "train_log.jsonl"))
    finally:
        if old_cache is None:
            os.environ.pop("UNLEARN_BENCH_CACHE", None)
        else:
            os.environ["UNLEARN_BENCH_CACHE"] = old_cache
    results: dict[str, dict[str, Any]] = {}
    for name, runs in rounds.items():
        tokens, seconds = sum(r["tokens"] for r in runs), sum(r["seconds"] for r in runs)
        per_round = [r["tokens_per_s"] for r in runs]
        results[name] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
                         "rounds_tokens_per_s": per_round}  # fmt: skip
    counts = {k: v["tokens"] for k, v in results.items()}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the three runs trained on different tokens: {counts}")
    hand = results["hand"]["tokens_per_s"]
    for value in results.values():
        value["vs_hand"] = value["tokens_per_s"] / hand
    line = ", ".join(f"{k} {v['tokens_per_s']:.0f}" for k, v in results.items())
    return {
        "model": "SmolLM2-135M-Instruct (float32, CPU)", "task": spec.name, "method": "grad_ascent",
        "steps": STEPS, "steps_timed": STEPS - 1, "batch_size": BATCH,
        "torch_threads": torch.get_num_threads(), "runs": results,
        "summary": f"GA training tokens/s, SmolLM2-135M CPU, batch {BATCH}: {line} "
                   f"(stage/hand {results['stage']['vs_hand']:.2f})",
    }  # fmt: skip
