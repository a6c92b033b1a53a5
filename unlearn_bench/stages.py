"""The model-producing stages: finetune and unlearn, with content-addressed checkpoints.

A checkpoint's folder name hashes everything that determines its weights (the starting
weights' sha256, the data, the prompt format, the optimiser settings, the method and its
config, the seed, the harness version), so a rerun reuses a finished stage and a changed
setting never reuses a stale one. Folders are written under a temporary name and renamed
when complete, so an interrupted stage leaves nothing that looks finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench import __version__
from unlearn_bench.config import TrainConfig, UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import METHODS, UnlearnBatch
from unlearn_bench.paths import atomic_write_json, cache_dir
from unlearn_bench.prompts import format_prompt, tokenizer_chat
from unlearn_bench.tasks import TaskSpec
from unlearn_bench.training import Example, collate, epoch_batches, total_steps, train


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    cached: bool  # True when an earlier run had already produced it
    log_path: Path


def checkpoint_dir(kind: str, recipe: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()
    return cache_dir() / "checkpoints" / f"{kind}-{digest[:20]}"


def _finished(path: Path) -> bool:
    return (path / "RECIPE.json").is_file()


def _save(model: Any, tokenizer: Any, final: Path, tmp: Path, recipe: dict[str, Any]) -> None:
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    atomic_write_json(tmp / "RECIPE.json", recipe)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _load_for_training(path: str, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Train in float32 master weights; accelerate adds bf16 autocast on GPUs.
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype="float32", trust_remote_code=trust_remote_code
    )
    return model, tokenizer


def examples_for(
    spec: TaskSpec, tokenizer: Any, records: list[dict], answer_key: str = "answer"
) -> list[Example]:
    chat = tokenizer_chat(tokenizer)
    return [
        Example(format_prompt(spec.prompt, r["question"], chat), r[answer_key]) for r in records
    ]


def finetune(
    start: str,
    start_hash: str,
    spec: TaskSpec,
    records: list[dict],
    split: str,
    cfg: TrainConfig,
    seed: int,
    trust_remote_code: bool = False,
) -> Checkpoint:
    """Minimise answer NLL on ``records`` (a task's full or retain split)."""
    recipe = {
        "kind": "finetune", "start": start_hash, "task": spec.fingerprint(), "split": split,
        "n": len(records), "train": dataclasses.asdict(cfg), "seed": seed, "harness": __version__,
    }  # fmt: skip
    final = checkpoint_dir("finetune", recipe)
    if _finished(final):
        return Checkpoint(final, True, final / "train_log.jsonl")
    if not records:
        raise UnlearnBenchError(f"cannot finetune on the empty split {split!r}")
    from unlearn_bench.methods.losses import batch_nll

    model, tokenizer = _load_for_training(start, trust_remote_code)
    examples = examples_for(spec, tokenizer, records)
    batches = epoch_batches(len(examples), cfg.batch_size, random.Random(seed))

    def make_batch(_: random.Random) -> UnlearnBatch:
        chosen = [examples[i] for i in next(batches)]
        return UnlearnBatch({"forget": collate(tokenizer, chosen, cfg.max_length)})

    def loss_fn(m: Any, batch: UnlearnBatch) -> Any:
        part = batch["forget"]
        logits = m(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
        return batch_nll(logits, part.labels)

    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    steps = total_steps(cfg, len(examples))
    model = train(
        model,
        loss_fn,
        make_batch,
        steps,
        cfg,
        seed=seed,
        log_path=tmp / "train_log.jsonl",
        desc=f"finetune[{split}]",
    )
    _save(model, tokenizer, final, tmp, recipe)
    return Checkpoint(final, False, final / "train_log.jsonl")


def build_method(ucfg: UnlearnConfig) -> tuple[type, Any]:
    method_cls = METHODS.get(ucfg.method)
    try:
        method_config = method_cls.config_cls(**ucfg.args)
    except TypeError as exc:
        raise UnlearnBenchError(f"method {ucfg.method!r}: bad args {ucfg.args}: {exc}") from None
    return method_cls, method_config


def _parts(
    spec: TaskSpec, tokenizer: Any, splits: dict[str, list[dict]], needs: frozenset[str], seed: int
) -> dict[str, list[Example]]:
    forget = splits[spec.splits.forget]
    parts = {"forget": examples_for(spec, tokenizer, forget)}
    retain = splits.get(spec.splits.retain) or []
    if {"retain", "mismatch"} & needs and not retain:
        raise UnlearnBenchError(
            f"this method needs retain data but split {spec.splits.retain!r} is empty"
        )
    if "retain" in needs:
        parts["retain"] = examples_for(spec, tokenizer, retain)
    rng = random.Random(seed)
    if "mismatch" in needs:
        # GA+Mismatch: forget questions paired with random normal (retain) answers.
        mixed = [dict(r, answer=rng.choice(retain)["answer"]) for r in forget]
        parts["mismatch"] = examples_for(spec, tokenizer, mixed)
    if "idk" in needs:
        from unlearn_bench.refusals import load_refusals

        refusals = load_refusals(None)
        idk = [dict(r, answer=rng.choice(refusals)) for r in forget]
        parts["idk"] = examples_for(spec, tokenizer, idk)
    return parts


def unlearn(
    start: str,
    start_hash: str,
    spec: TaskSpec,
    splits: dict[str, list[dict]],
    ucfg: UnlearnConfig,
    seed: int,
    trust_remote_code: bool = False,
) -> Checkpoint:
    """Run one unlearning method from ``start`` on the task's forget split."""
    method_cls, method_config = build_method(ucfg)
    needs = method_cls.needs_for(method_config)
    recipe = {
        "kind": "unlearn", "start": start_hash, "task": spec.fingerprint(), "method": ucfg.method,
        "method_config": dataclasses.asdict(method_config), "train": dataclasses.asdict(ucfg),
        "n_forget": len(splits[spec.splits.forget]), "seed": seed, "harness": __version__,
    }  # fmt: skip
    final = checkpoint_dir("unlearn", recipe)
    if _finished(final):
        return Checkpoint(final, True, final / "train_log.jsonl")
    model, tokenizer = _load_for_training(start, trust_remote_code)
    reference = None
    if "reference" in needs:
        # Built once per run and frozen; methods never copy it per step.
        reference, _ = _load_for_training(start, trust_remote_code)
        reference.eval().requires_grad_(False)
    method = method_cls(method_config, reference)
    parts = _parts(spec, tokenizer, splits, needs, seed)
    streams = {
        name: epoch_batches(len(ex), ucfg.batch_size, random.Random(seed + i))
        for i, (name, ex) in enumerate(parts.items())
    }

    def make_batch(_: random.Random) -> UnlearnBatch:
        return UnlearnBatch(
            {
                name: collate(
                    tokenizer, [parts[name][i] for i in next(streams[name])], ucfg.max_length
                )
                for name in parts
            }
        )

    def loss_fn(m: Any, batch: UnlearnBatch) -> Any:
        if (
            reference is not None
            and next(reference.parameters()).device != batch["forget"].input_ids.device
        ):
            reference.to(batch["forget"].input_ids.device)
        return method.loss(m, batch)

    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    steps = total_steps(ucfg, len(parts["forget"]))
    model = train(
        model,
        loss_fn,
        make_batch,
        steps,
        ucfg,
        seed=seed,
        log_path=tmp / "train_log.jsonl",
        desc=f"unlearn[{ucfg.method}]",
        step_logs=lambda: dict(method.logs),
    )
    _save(model, tokenizer, final, tmp, recipe)
    return Checkpoint(final, False, final / "train_log.jsonl")
