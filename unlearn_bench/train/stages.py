"""The model-producing stages: finetune and unlearn, with content-addressed checkpoints.

A checkpoint's folder name hashes everything that determines its weights (the starting
weights' sha256, the data, the prompt format, the optimiser, LoRA and control settings, the
method and its config, the seed, the training code, the numeric profile), so a rerun reuses a
finished stage and a changed setting or a changed line of training code never reuses a stale
one. Folders are written under a temporary name and renamed
when complete, so an interrupted stage leaves nothing that looks finished. Under a multi-process
launch every process trains; only the main process writes, and the others wait for it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench import __version__, numerics
from unlearn_bench.config import TrainConfig, UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import Method, TokenBatch, UnlearnBatch, build_method
from unlearn_bench.paths import atomic_write_json, cache_dir
from unlearn_bench.tasks import TaskSpec
from unlearn_bench.train.checkpointing import (
    claim,
    export_model,
    merge_for_saving,
    mix_toward_start,
    publish,
)
from unlearn_bench.train.collapse_watch import ForgetWatch
from unlearn_bench.train.controls import Controller, probe
from unlearn_bench.train.cost import TokenTally
from unlearn_bench.train.distributed import barrier, is_main_process, world_size
from unlearn_bench.train.loop import (
    BatchSource,
    collate,
    seed_everything,
    total_steps,
    train,
)
from unlearn_bench.train.parts import batch_source, examples_for


@dataclass(frozen=True)
class StageInputs:
    """What a training stage starts from; the runner builds it (``runner.stage_inputs``)."""

    start: str  # path (or hub id) of the starting weights
    start_hash: str  # their content hash: part of every checkpoint key
    spec: TaskSpec
    splits: dict[str, list[dict[str, Any]]]
    seed: int
    trust_remote_code: bool = False
    allow_pickle: bool = False  # pickle-only start weights, loaded with weights_only=True


@dataclass(frozen=True)
class Checkpoint:
    """A finished stage's model folder, and whether an earlier run had made it."""

    path: Path
    cached: bool  # True when an earlier run had already produced it
    log_path: Path


def checkpoint_dir(kind: str, recipe: dict[str, Any]) -> Path:
    """The cache folder of a checkpoint with this recipe."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()
    return cache_dir() / "checkpoints" / f"{kind}-{digest[:20]}"


def code_fingerprint(*module_names: str) -> str:
    """Hash of the named modules' code without docstrings or comments.

    Part of every checkpoint key: a change that can move weights (a loss, the batch order) must
    never be served a checkpoint the old code made, while a reworded docstring keeps the cache.
    """
    digest = hashlib.sha256()
    for name in sorted(set(module_names)):
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        digest.update(name.encode() + ast.dump(tree).encode())
    return digest.hexdigest()[:16]


# The modules whose code decides a finetune's or an unlearning run's weights.
TRAINING_CODE = ("unlearn_bench.train.loop", "unlearn_bench.train.batches", "unlearn_bench.prompts")
UNLEARNING_CODE = (
    *TRAINING_CODE, __name__, "unlearn_bench.methods.losses", "unlearn_bench.methods.base",
    "unlearn_bench.train.parts",  # builds the paired parts (idk, mismatch) every step
)  # fmt: skip


def _data_hash(records: list[Any]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def _splits_read(spec: TaskSpec, needs: frozenset[str], ucfg: UnlearnConfig) -> list[str]:
    """The splits an unlearning run reads: forget, and retain where a part or a control uses it."""
    uses_retain = bool({"retain", "mismatch"} & needs) or ucfg.control.evaluates
    return [spec.splits.forget] + ([spec.splits.retain] if uses_retain else [])


def _finished(path: Path) -> bool:
    return (path / "RECIPE.json").is_file()


def _train_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The recipe's view of ``cfg``: ``save_every`` only adds snapshots, never changes weights."""
    settings = dataclasses.asdict(cfg)
    settings.pop("save_every", None)
    if settings.get("trainable") is None:
        settings.pop("trainable", None)  # recipes from before the setting existed stay valid
    return settings


def _fresh_dir(final: Path) -> Path:
    """The stage's temporary folder, emptied by the main process; every process waits."""
    tmp = final.with_name(final.name + ".partial")
    if is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    return tmp


def _load_for_training(
    path: str, trust_remote_code: bool, allow_pickle: bool = False
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from unlearn_bench.backends.hf import check_loading_info, weights_kwargs

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    weights = weights_kwargs(path, allow_pickle)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        # Train in float32 master weights; accelerate adds bf16 autocast on GPUs.
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            path,
            dtype="float32",
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **weights,
        )
    except Exception as exc:  # noqa: BLE001 - the same one-line report as the eval loader
        text = str(exc).strip()
        first = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        raise UnlearnBenchError(f"cannot load model {path!r} for training: {first}") from None
    model, info = loaded  # output_loading_info=True: (model, report)
    check_loading_info(path, info)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _trainable(
    path: str,
    cfg: TrainConfig,
    trust_remote_code: bool,
    seed: int,
    pattern: str | None = None,
    allow_pickle: bool = False,
) -> tuple[Any, Any]:
    """The model to train: as loaded or LoRA-wrapped, only ``pattern``'s parameters trainable."""
    model, tokenizer = _load_for_training(path, trust_remote_code, allow_pickle)
    if cfg.lora is not None:
        from unlearn_bench.train.lora import apply_lora

        seed_everything(seed)  # LoRA's A matrices are drawn at random: seed them too
        model = apply_lora(model, cfg.lora)
    if pattern is not None:
        freeze_except(model, pattern)
    return model, tokenizer


def freeze_except(model: Any, pattern: str) -> list[str]:
    """Freeze every parameter whose name ``pattern`` does not match; return those that train."""
    import re

    regex = re.compile(pattern)
    kept = []
    for name, param in model.named_parameters():
        keep = param.requires_grad and regex.search(name) is not None
        param.requires_grad_(keep)
        if keep:
            kept.append(name)
    if not kept:
        raise UnlearnBenchError(f"trainable pattern {pattern!r} matches no trainable parameter")
    return kept


def trainable_pattern(
    ucfg: UnlearnConfig, method_cls: type[Method], method_config: Any
) -> str | None:
    """The run's trainable-parameter pattern: the config's, else the method's default."""
    if ucfg.trainable is not None:
        return ucfg.trainable
    return method_cls.default_trainable(method_config)


def finetune(inputs: StageInputs, split: str, cfg: TrainConfig) -> Checkpoint:
    """Minimise answer NLL on the task's ``split`` (its full or retain split)."""
    start, start_hash, spec, seed = inputs.start, inputs.start_hash, inputs.spec, inputs.seed
    records, trust_remote_code = inputs.splits[split], inputs.trust_remote_code
    pickle = inputs.allow_pickle
    recipe = {
        "kind": "finetune", "start": start_hash, "task": spec.fingerprint(), "split": split,
        "n": len(records), "train": _train_settings(cfg), "seed": seed, "harness": __version__,
        "data": _data_hash(records), "code": code_fingerprint(*TRAINING_CODE),
        "numerics": numerics.profile(),
    }  # fmt: skip
    final = checkpoint_dir("finetune", recipe)
    with claim(final):  # a second process for this stage waits, then reuses it
        if _finished(final):
            return Checkpoint(final, True, final / "train_log.jsonl")
        if not records:
            raise UnlearnBenchError(f"cannot finetune on the empty split {split!r}")
        from unlearn_bench.methods.losses import batch_nll

        model, tokenizer = _trainable(start, cfg, trust_remote_code, seed, cfg.trainable, pickle)
        examples = examples_for(spec, tokenizer, records)
        source = BatchSource(tokenizer, {"forget": examples}, cfg.batch_size, cfg.max_length, seed)

        def loss_fn(m: Any, batch: UnlearnBatch) -> Any:
            part = batch["forget"]
            logits = m(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
            return batch_nll(logits, part.labels)

        tmp = _fresh_dir(final)
        result = train(
            model, loss_fn, source, total_steps(cfg, len(examples), world_size()), cfg, seed=seed,
            out_dir=tmp, desc=f"finetune[{split}]",
            rebuild=lambda: _trainable(
                start, cfg, trust_remote_code, seed, cfg.trainable, pickle
            )[0],
            export=lambda m, out: export_model(m, tokenizer, out),
        )  # fmt: skip
        if is_main_process():
            export_model(result.model, tokenizer, tmp)
            publish(tmp, final, recipe)
        barrier()
        return Checkpoint(final, False, final / "train_log.jsonl")


def control_probe_parts(
    spec: TaskSpec, tokenizer: Any, splits: dict[str, list[dict]], ucfg: UnlearnConfig
) -> dict[str, list[TokenBatch]]:
    """Fixed probe items for the controls: the first ``eval_size`` forget and retain records."""
    size, bs = ucfg.control.eval_size, ucfg.batch_size
    retain = splits.get(spec.splits.retain) or []
    if not retain:
        raise UnlearnBenchError(
            f"control settings need retain data but split {spec.splits.retain!r} is empty"
        )
    out = {}
    for name, records in (("forget", splits[spec.splits.forget]), ("retain", retain)):
        examples = examples_for(spec, tokenizer, records[:size])
        out[name] = [
            collate(tokenizer, examples[i : i + bs], ucfg.max_length)
            for i in range(0, len(examples), bs)
        ]
    return out


def unlearn(inputs: StageInputs, ucfg: UnlearnConfig) -> Checkpoint:
    """Run one unlearning method from ``inputs.start`` on the task's forget split."""
    start, start_hash, spec, seed = inputs.start, inputs.start_hash, inputs.spec, inputs.seed
    splits, trust_remote_code = inputs.splits, inputs.trust_remote_code
    pickle = inputs.allow_pickle
    method_cls, method_config = build_method(ucfg.method, ucfg.args)
    needs = method_cls.needs_for(method_config)
    recipe = {
        "kind": "unlearn", "start": start_hash, "task": spec.fingerprint(), "method": ucfg.method,
        "method_config": dataclasses.asdict(method_config), "train": _train_settings(ucfg),
        "n_forget": len(splits[spec.splits.forget]), "seed": seed, "harness": __version__,
        "data": _data_hash([splits[name] for name in _splits_read(spec, needs, ucfg)]),
        "code": code_fingerprint(*UNLEARNING_CODE, method_cls.__module__),
        "numerics": numerics.profile(),
    }  # fmt: skip
    pattern = trainable_pattern(ucfg, method_cls, method_config)
    if pattern is not None:
        recipe["trainable"] = pattern
    if {"idk", "mismatch", "safe"} & needs:
        # Paired parts are derived per step from the step's forget rows (train/parts.py); older
        # checkpoints paired rows of different questions and must not be reused.
        recipe["paired_parts"] = "derived-per-step"
    final = checkpoint_dir("unlearn", recipe)
    with claim(final):  # a second process for this stage waits, then reuses it
        if _finished(final):
            return Checkpoint(final, True, final / "train_log.jsonl")
        model, tokenizer = _trainable(start, ucfg, trust_remote_code, seed, pattern, pickle)
        reference = None
        if "reference" in needs:
            # Built once per run and frozen; methods never copy it per step.
            reference, _ = _load_for_training(start, trust_remote_code, pickle)
            reference.eval().requires_grad_(False)
        method = method_cls(method_config, reference)
        source = batch_source(
            spec, tokenizer, splits, needs, method_config, ucfg.batch_size, ucfg.max_length, seed
        )
        control = ucfg.control
        probe_parts = (
            control_probe_parts(spec, tokenizer, splits, ucfg) if control.evaluates else {}
        )
        controller = Controller(control) if control.eval_every is not None else None

        watched: dict[str, float] = {}
        watch = ForgetWatch()  # collapse signals from the method's own forward on the forget part
        tally = TokenTally(model, reference)  # what the method's own passes cost (train/cost.py)

        def loss_fn(m: Any, batch: UnlearnBatch) -> Any:
            device = batch["forget"].input_ids.device
            if reference is not None and next(reference.parameters()).device != device:
                reference.to(device)  # once: the frozen copy follows the trained model's device
            with watch.capture(m, batch["forget"]), tally.active():
                loss = method.loss(m, batch)
            watched.update(watch.stats(m, batch["forget"]))
            return loss

        tmp = _fresh_dir(final)
        steps = total_steps(ucfg, len(source.parts["forget"]), world_size())
        result = train(
            model, loss_fn, source, steps, ucfg, seed=seed, out_dir=tmp,
            desc=f"unlearn[{ucfg.method}]",
            step_logs=lambda: {**method.logs, **watched}, controller=controller,
            probe=lambda m: probe(m, probe_parts),
            rebuild=lambda: _trainable(start, ucfg, trust_remote_code, seed, pattern, pickle)[0],
            export=lambda m, out: export_model(m, tokenizer, out),
            count_tokens=lambda _batch: tally.take(),
        )  # fmt: skip
        tally.close()
        if is_main_process():
            summary: dict[str, Any] = {"steps": result.steps, "stop_reason": result.stop_reason}
            if controller is not None:
                summary.update(controller.summary())
            merged = merge_for_saving(result.model, tmp)
            if control.mix:
                # theta_0: the frozen reference when the method has one, else the start reloaded.
                theta0 = reference
                if theta0 is None:
                    theta0 = _load_for_training(start, trust_remote_code, pickle)[0]
                summary["mix"] = mix_toward_start(merged, theta0, probe_parts, control)
            atomic_write_json(tmp / "controls.json", summary)
            export_model(merged, tokenizer, tmp)
            publish(tmp, final, recipe)
        barrier()
        return Checkpoint(final, False, final / "train_log.jsonl")
