"""The optimisation loop shared by the finetune and unlearn stages.

Runs through accelerate, so the same code drives one CPU process or a multi-GPU launch
(``accelerate launch``); device placement is automatic. Each step's losses go to a JSONL
training log so unlearning dynamics can be plotted. A NaN or infinite loss stops the run with a
clear message; the checkpoint written last stays the last good one.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from unlearn_bench.config import TrainConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods.base import TokenBatch, UnlearnBatch
from unlearn_bench.prompts import FormattedPrompt


@dataclass(frozen=True)
class Example:
    """One prompt/answer pair to train on; labels cover the answer and the end-of-turn token."""

    prompt: FormattedPrompt
    answer: str


def encode_example(
    tokenizer: Any, example: Example, max_length: int
) -> tuple[list[int], list[int]]:
    ctx = tokenizer(example.prompt.context, add_special_tokens=example.prompt.add_special_tokens)
    ans = tokenizer(example.prompt.answer_prefix + example.answer, add_special_tokens=False)
    # The end-of-turn token is trained so a finetuned model stops after its answer.
    answer_ids = list(ans.input_ids) + [tokenizer.eos_token_id]
    ids = (list(ctx.input_ids) + answer_ids)[:max_length]
    labels = ([-100] * len(ctx.input_ids) + answer_ids)[:max_length]
    return ids, labels


def collate(tokenizer: Any, examples: list[Example], max_length: int) -> TokenBatch:
    encoded = [encode_example(tokenizer, e, max_length) for e in examples]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(encoded):
        ids[row, : len(row_ids)] = torch.tensor(row_ids)
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
        mask[row, : len(row_ids)] = 1  # from lengths: pad id may be a real token (SPEC pitfall 1)
    return TokenBatch(ids, mask, labels)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def epoch_batches(n: int, batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Shuffled index batches forever, reshuffled each epoch (seeded)."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def total_steps(cfg: TrainConfig, n_examples: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum))
    return max(1, math.ceil(per_epoch * cfg.epochs))


LossFn = Callable[[torch.nn.Module, UnlearnBatch], torch.Tensor]


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    make_batch: Callable[[random.Random], UnlearnBatch],
    steps: int,
    cfg: TrainConfig,
    *,
    seed: int,
    log_path: Path | None = None,
    desc: str = "train",
    step_logs: Callable[[], dict[str, float]] | None = None,
    on_step: Callable[[int, torch.nn.Module], bool] | None = None,
) -> torch.nn.Module:
    """Run ``steps`` optimiser steps of ``loss_fn``; returns the unwrapped, trained model.

    ``on_step(step, model)`` may evaluate and return True to stop early (checkpoint rules).
    """
    from accelerate import Accelerator

    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum)
    seed_everything(seed)
    rng = random.Random(seed)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    warmup = max(1, cfg.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    log = log_path.open("a") if log_path and accelerator.is_main_process else None
    bar = tqdm(range(steps), desc=desc, disable=not accelerator.is_main_process)
    try:
        for step in bar:
            for _ in range(cfg.grad_accum):
                with accelerator.accumulate(model):
                    batch = make_batch(rng).to(accelerator.device)
                    loss = loss_fn(model, batch)
                    if not torch.isfinite(loss):
                        raise UnlearnBenchError(
                            f"{desc}: loss became {float(loss)} at step {step}; stopped, the last "
                            "good checkpoint is kept (lower the learning rate?)"
                        )
                    accelerator.backward(loss)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
            row = {
                "step": step + 1,
                "loss": float(loss.detach()),
                **(step_logs() if step_logs else {}),
            }
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if log:
                log.write(json.dumps(row) + "\n")
            if on_step and on_step(step + 1, accelerator.unwrap_model(model)):
                break
    finally:
        if log:
            log.close()
    model = accelerator.unwrap_model(model)
    model.eval()
    return model
