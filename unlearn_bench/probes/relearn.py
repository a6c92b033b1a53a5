"""Relearning attack: finetune the unlearned model for k steps on part of the forget set.

Hu et al. 2024 (arXiv 2406.13356) show that a few finetuning steps on a small, related part
of the forget data bring back what unlearning seemed to remove. The task file declares which
forget items are relearned (``probes.relearn.train``) and which are then evaluated
(``probes.relearn.evaluate``); the two must not share an item, so relearning never trains on
what it measures. Training reuses the finetune stage (answer NLL, AdamW), so the relearned
model is a content-addressed cached checkpoint like any other.
"""

from __future__ import annotations

import re
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.probes.base import PROBES, Probe, ProbeContext, Record, probe_set_names

SLICE = re.compile(r"^([A-Za-z0-9_]+)\[(-?\d*):(-?\d*)\]$")


def read_slice(text: str, splits: dict[str, list[Record]], where: str) -> tuple[str, list[Record]]:
    """``forget[:4]`` -> ("forget", the records); a bad form or unknown split is an error."""
    match = SLICE.match(text.replace(" ", ""))
    if not match:
        raise UnlearnBenchError(f"{where}: {text!r} must look like split[start:stop]")
    split, start, stop = match.groups()
    if split not in splits:
        raise UnlearnBenchError(f"{where}: unknown split {split!r}")
    part = splits[split][int(start) if start else None : int(stop) if stop else None]
    if not part:
        raise UnlearnBenchError(f"{where}: {text!r} selects no items")
    return split, part


def item_key(record: Record) -> tuple[str, str]:
    """What identifies an item across splits and slices: its question and answer."""
    return (str(record.get("question")), str(record.get("answer")))


@PROBES.register("relearn")
class Relearn(Probe):
    """``relearn-K``: K optimiser steps on the declared relearn items, then evaluate the rest."""

    family = "relearn"
    needs_arg = True

    def _split(self, ctx: ProbeContext) -> tuple[list[Record], str, list[Record]]:
        declared = ctx.spec.probes.relearn
        where = f"task {ctx.spec.name}: probes.relearn"
        if declared is None:
            raise UnlearnBenchError(f"{where} is not declared (train and evaluate slices)")
        _, train = read_slice(declared.train, ctx.splits, where)
        split, rest = read_slice(declared.evaluate, ctx.splits, where)
        return train, split, rest

    def check(self, ctx: ProbeContext) -> None:
        """Steps >= 1; evaluated items never among the relearned ones."""
        super().check(ctx)
        if not self.arg or self.arg < 1:
            raise UnlearnBenchError("probe relearn needs at least one step, e.g. relearn-20")
        train, _, _ = self._split(ctx)
        trained = {item_key(r) for r in train}
        for name, records in self.eval_sets(ctx).items():
            overlap = [r["question"] for r in records if item_key(r) in trained]
            if overlap:
                raise UnlearnBenchError(
                    f"task {ctx.spec.name}: relearn split overlaps the evaluated items of "
                    f"{name} ({len(overlap)} shared, e.g. {overlap[0]!r})"
                )

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """Steps, optimiser settings and the declared slices."""
        declared = ctx.spec.probes.relearn
        assert declared is not None
        s = ctx.settings
        return {
            **super().describe(ctx), "steps": self.arg, "lr": s.relearn_lr,
            "batch_size": s.relearn_batch_size, "train": declared.train,
            "evaluate": declared.evaluate,
        }  # fmt: skip

    def eval_sets(self, ctx: ProbeContext) -> dict[str, list[Record]]:
        """Sets on the declared split evaluate only the declared rest; others as the task."""
        _, split, rest = self._split(ctx)
        own = super().eval_sets(ctx)
        return {
            name: rest if ctx.spec.evaluation[name].split == split else own[name]
            for name in probe_set_names(ctx.spec)
        }

    def model_path(self, ctx: ProbeContext, model_path: str) -> str:
        """Finetune ``model_path`` for K steps on the relearn items (a cached checkpoint)."""
        from unlearn_bench.config import FinetuneConfig
        from unlearn_bench.runner import model_hash
        from unlearn_bench.train.stages import StageInputs, finetune

        train, _, _ = self._split(ctx)
        s = ctx.settings
        cfg = FinetuneConfig(
            epochs=1.0, lr=s.relearn_lr, batch_size=s.relearn_batch_size, max_steps=self.arg
        )
        inputs = StageInputs(
            start=model_path, start_hash=model_hash(model_path), spec=ctx.spec,
            splits={"relearn": train}, seed=ctx.config.seed,
            trust_remote_code=ctx.config.trust_remote_code,
        )  # fmt: skip
        return str(finetune(inputs, "relearn", cfg).path)
