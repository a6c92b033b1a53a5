"""The optimisation loop shared by the finetune and unlearn stages.

Runs through accelerate, so the same code drives one CPU process or a multi-process launch
(DDP, FSDP or DeepSpeed from an accelerate config file; see configs/accelerate/README.md).
Data parallelism is exact (see :mod:`unlearn_bench.train.batches`): the effective batch is
``batch_size x grad_accum x processes`` and the examples in it do not depend on how it is split.
Each step's losses, averaged over micro-batches and processes, go to ``train_log.jsonl``: one
object per step with ``step``, ``loss``, ``forget_loss`` / ``retain_loss`` where the method has
them (:func:`standard_losses`), the method's own logs, ``lr``, ``tokens`` and any evaluated
control metric as ``eval/<name>``. A NaN or infinite loss stops every process with a clear
message; the last good snapshot (``save_every``) is exported as a loadable model first.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from unlearn_bench.config import TrainConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import UnlearnBatch
from unlearn_bench.train.batches import BatchSource, Example, collate, encode_example, index_stream
from unlearn_bench.train.controls import Controller
from unlearn_bench.train.distributed import force_cpu
from unlearn_bench.train.snapshots import Snapshots

__all__ = [
    "BatchSource", "Example", "TrainResult", "collate", "encode_example", "index_stream",
    "seed_everything", "standard_losses", "total_steps", "train",
]  # fmt: skip

LossFn = Callable[[torch.nn.Module, UnlearnBatch], torch.Tensor]
Probe = Callable[[torch.nn.Module], dict[str, float]]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def total_steps(cfg: TrainConfig, n_examples: int, processes: int = 1) -> int:
    """Optimiser steps: ``max_steps``, else epochs x ceil(n / effective batch)."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum * processes))
    return max(1, math.ceil(per_epoch * cfg.epochs))


def standard_losses(logs: dict[str, float]) -> dict[str, float]:
    """``forget_loss`` / ``retain_loss`` columns common to every method's log.

    forget_loss: the method's own forget term when it logs one, else -forget_nll (the ascent
    term of GA, GradDiff, GA+Mismatch before weighting). retain_loss: the method's retain term
    (``retain_loss``, else ``retain_nll``, else ``retain_kl``); absent for forget-only methods.
    """
    out: dict[str, float] = {}
    if "forget_loss" in logs:
        out["forget_loss"] = logs["forget_loss"]
    elif "forget_nll" in logs:
        out["forget_loss"] = -logs["forget_nll"]
    for key in ("retain_loss", "retain_nll", "retain_kl"):
        if key in logs:
            out["retain_loss"] = logs[key]
            break
    return out


@dataclass
class TrainResult:
    """The trained model (complete on the main process) and what happened."""

    model: torch.nn.Module
    steps: int
    stop_reason: str | None = None
    best_step: int | None = None


def make_accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    # Some methods leave parameters out of the loss (RMU reads a middle layer's output).
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum, cpu=force_cpu(), kwargs_handlers=[ddp]
    )
    if force_cpu() and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        _enable_fsdp_on_cpu(accelerator)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:  # no DataLoader is prepared, so DeepSpeed needs the size stated
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    return accelerator


def _mean_over_processes(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="mean")
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


class _Loop:
    """One training run: the prepared model and optimiser, the data slots, the log."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, out_dir: Path, **hooks: Any):
        if cfg.save_every is not None and cfg.save_every < 1:
            raise UnlearnBenchError(f"save_every must be >= 1, got {cfg.save_every}")
        self.cfg, self.hooks = cfg, hooks
        self.acc = acc = make_accelerator(cfg)
        seed_everything(hooks["seed"])
        model.train()
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = max(1, cfg.warmup_steps)
        # Not prepared: accelerate would step a prepared scheduler once per process per step.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )
        self.model, self.optimizer = acc.prepare(model, optimizer)
        if acc.gradient_accumulation_steps != cfg.grad_accum:
            # Micro-batches follow cfg.grad_accum; a launcher override
            # (ACCELERATE_GRADIENT_ACCUMULATION_STEPS, a fixed DeepSpeed value) would break that.
            raise UnlearnBenchError(
                f"the accelerate setup asks for {acc.gradient_accumulation_steps} accumulation "
                f"steps but the run config has grad_accum={cfg.grad_accum}; set it in the run "
                "config only (leave the accelerate/DeepSpeed value unset or 'auto')"
            )
        self.snaps = Snapshots(acc, self.model, names, out_dir / "snapshots", hooks["rebuild"])
        self.world = acc.num_processes
        self.slots = [a * self.world + acc.process_index for a in range(cfg.grad_accum)]

    def step(self, step: int, source: BatchSource, loss_fn: LossFn) -> dict[str, Any]:
        """One optimiser step over this process's micro-batches; returns the log row."""
        acc, logs_fn = self.acc, self.hooks["step_logs"]
        count_fn = self.hooks["count_tokens"]
        losses, logs = [], []
        tokens: dict[str, int] = {}
        for batch in source.step(self.cfg.grad_accum * self.world, self.slots):
            with acc.accumulate(self.model):
                batch = batch.to(acc.device)
                loss = loss_fn(self.model, batch)
                # Agree across processes, so a NaN on one rank stops all instead of hanging.
                bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=acc.device)
                if float(acc.reduce(bad, reduction="sum") if self.world > 1 else bad):
                    self.snaps.fail(
                        step, float(loss.detach()), self.hooks["desc"], self.hooks["export"]
                    )
                acc.backward(loss)
                self.optimizer.step()
                self.optimizer.zero_grad()
            losses.append(float(loss.detach()))
            logs.append(dict(logs_fn()) if logs_fn else {})
            # Without a counter (finetuning: one part, all trained) every part's tokens count.
            counted = count_fn(batch) if count_fn else {"tokens": batch_tokens(batch)}
            for key, n in counted.items():
                tokens[key] = tokens.get(key, 0) + n
        lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        values = {k: sum(r[k] for r in logs) / len(logs) for k in logs[0]}
        values = {"loss": sum(losses) / len(losses), **values}
        values.update({f"count/{k}": float(n) for k, n in tokens.items()})
        values = _mean_over_processes(acc, values)
        # The whole step's tokens: each process's mean times the processes.
        counts = {
            k[6:]: round(values.pop(k) * self.world) for k in list(values) if k[:6] == "count/"
        }
        return {"step": step, **values, **standard_losses(values), "lr": lr, **counts}

    def evaluate(self, step: int, row: dict[str, Any]) -> str | None:
        """Probe, let the controller decide, keep a best snapshot; returns a stop reason."""
        controller, probe = self.hooks["controller"], self.hooks["probe"]
        decision = controller.observe(step, probe(self.model))
        if decision.save_best:
            self.snaps.save("best", step)
        row.update({f"eval/{k}": v for k, v in decision.metrics.items()})
        return decision.stop_reason


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    source: BatchSource,
    steps: int,
    cfg: TrainConfig,
    *,
    seed: int,
    out_dir: Path,
    desc: str = "train",
    step_logs: Callable[[], dict[str, float]] | None = None,
    controller: Controller | None = None,
    probe: Probe | None = None,
    rebuild: Callable[[], torch.nn.Module] | None = None,
    export: Callable[[torch.nn.Module, Path], None] | None = None,
    count_tokens: Callable[[UnlearnBatch], dict[str, int]] | None = None,
) -> TrainResult:
    """Run ``steps`` optimiser steps of ``loss_fn``; logs go to ``out_dir/train_log.jsonl``.

    ``controller`` + ``probe``: evaluate at step 0, every ``eval_every`` steps and at the end;
    keep the best snapshot and stop early as the controller decides. ``rebuild`` makes a fresh
    full model (needed only when parameters are sharded: FSDP, ZeRO-3); ``export`` writes a
    complete model directory (used for the last good snapshot when the loss goes non-finite).
    ``count_tokens(batch)``: the tokens each micro-batch cost, as log columns (train/cost.py's
    ``TokenTally.take``); without it, the non-pad tokens of every batch part.
    """
    loop = _Loop(model, cfg, out_dir, seed=seed, desc=desc, step_logs=step_logs,
                 controller=controller, probe=probe, rebuild=rebuild, export=export,
                 count_tokens=count_tokens)  # fmt: skip
    every = controller.config.eval_every if controller and probe else None
    main = loop.acc.is_main_process
    log = (out_dir / "train_log.jsonl").open("a") if main else None
    stop_reason, done, start = None, 0, time.perf_counter()
    try:
        if every:
            loop.evaluate(0, {})
        for step in tqdm(range(1, steps + 1), desc=desc, disable=not main):
            row = loop.step(step, source, loss_fn)
            row["elapsed_s"] = round(time.perf_counter() - start, 3)
            done = step
            if cfg.save_every and step % cfg.save_every == 0:
                loop.snaps.save("last", step)
            if every and (step % every == 0 or step == steps):
                stop_reason = loop.evaluate(step, row)
            if log:
                log.write(json.dumps(row) + "\n")
                log.flush()
            if stop_reason:
                break
    finally:
        if log:
            log.close()
    best = controller.best_step if controller and controller.config.select != "last" else None
    final = loop.snaps.final_model(best_step=best)
    final.eval()
    return TrainResult(final, done, stop_reason, best)


def batch_tokens(batch: UnlearnBatch) -> int:
    """Non-pad tokens of every part of a micro-batch."""
    return sum(int(p.attention_mask.sum()) for p in batch.parts.values())


def _enable_fsdp_on_cpu(accelerator: Any) -> None:
    """Turn on FSDP for a multi-CPU launch that asked for it (accelerate 1.16 ignores it there).

    accelerate enables FSDP only for GPU-like devices; on CPU it keeps the plugin out and wraps
    the model in DDP, silently. torch's FSDP itself trains on CPU with gloo (checked against one
    process in tests/integration/test_multiprocess_fsdp.py), so set the state accelerate would.
    """
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if accelerator.state.distributed_type != DistributedType.MULTI_CPU:
        return
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
    # Both shared states: accelerate copies PartialState's fields into AcceleratorState
    # whenever it builds one, which would quietly turn this back into DDP.
    for state in (PartialState(), accelerator.state):
        state.distributed_type = DistributedType.FSDP
        state.device = torch.device("cpu")
