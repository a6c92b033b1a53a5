"""The RLHF stage of ``ppo_rlhf``: TRL's RewardTrainer, then TRL's PPOTrainer, then a checkpoint.

Like :func:`unlearn_bench.train.stages.unlearn`, the stage is content-addressed (start weights,
task, data, method config, budget, seed, this code and TRL's version) and published atomically.
Its cost is counted, not modelled from a step count: a forward pre-hook on the transformer body
of each model (policy, frozen reference, reward, value) adds up the token positions it processes
(padding included, as it is computed), split by whether autograd was recording, i.e. whether a
backward pass follows. ``cost_phases.json`` holds them with FLOPs by the formula of
:mod:`unlearn_bench.train.cost`: ``2*N`` per forward-only position, ``6*N`` per trained one,
N the model's matmul parameters (the input embedding lookup excluded unless tied to the output).
Gradient checkpointing is off (TRL's configs default it on): it only trades memory for a
recomputed forward, which would make the counts depend on a memory setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench import __version__, numerics
from unlearn_bench.config import UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.methods import build_method
from unlearn_bench.paths import atomic_write_json
from unlearn_bench.train.checkpointing import claim, export_model, publish
from unlearn_bench.train.cost import PHASES_FILE, PositionCounter
from unlearn_bench.train.loop import seed_everything
from unlearn_bench.train.parts import examples_for
from unlearn_bench.train.stages import Checkpoint, StageInputs, checkpoint_dir, code_fingerprint

TRL_RANGE = "trl>=1.10,<1.13"


def trl_version() -> str:
    """The installed TRL's version, or a one-line refusal when it cannot run PPO."""
    try:
        import trl
        from trl.experimental.ppo import PPOTrainer  # noqa: F401
    except ImportError:
        raise UnlearnBenchError(
            f"ppo_rlhf needs TRL's PPO trainer ({TRL_RANGE}; TRL 1.13 removed PPO): "
            "pip install 'unlearn-bench[rlhf]'"
        ) from None
    return str(trl.__version__)


def check_rlhf(ucfg: UnlearnConfig, processes: int) -> None:
    """Refuse, before any work, settings the RLHF stage does not support."""
    trl_version()
    unsupported = {
        "lora": ucfg.lora is not None, "trainable": ucfg.trainable is not None,
        "control": ucfg.control.evaluates or ucfg.control.eval_every is not None,
        "grad_accum": ucfg.grad_accum != 1, "save_every": ucfg.save_every is not None,
        "multiple processes": processes > 1,
    }  # fmt: skip
    bad = [name for name, used in unsupported.items() if used]
    if bad:
        raise UnlearnBenchError(f"ppo_rlhf does not support {bad[0]} (TRL's trainers run it)")


def load_causal_lm(inputs: StageInputs) -> tuple[Any, Any]:
    """The start model in float32 on the CPU (TRL moves it) and its tokenizer, pad token set."""
    import torch

    from unlearn_bench.backends.hf import load_model_and_tokenizer
    from unlearn_bench.models import ResolvedModel

    resolved = ResolvedModel(inputs.start, inputs.start)
    return load_model_and_tokenizer(
        resolved, torch.device("cpu"), torch.float32, inputs.trust_remote_code,
        inputs.allow_pickle,
    )  # fmt: skip


def _episodes(ucfg: UnlearnConfig, config: Any, n_prompts: int) -> int:
    if config.episodes is not None:
        return int(config.episodes)
    if ucfg.max_steps is not None:
        return ucfg.max_steps * ucfg.batch_size
    return max(1, math.ceil(ucfg.epochs * n_prompts))


def rlhf_stage(inputs: StageInputs, ucfg: UnlearnConfig) -> Checkpoint:
    """Train ``ppo_rlhf`` from ``inputs.start``: reward model, then PPO; a cached checkpoint."""
    method_cls, config = build_method(ucfg.method, ucfg.args)
    spec, splits, seed = inputs.spec, inputs.splits, inputs.seed
    forget = [r for r in splits[spec.splits.forget] if r.get("safe_answer")]
    version = trl_version()
    recipe = {
        "kind": "unlearn", "start": inputs.start_hash, "task": spec.fingerprint(),
        "method": ucfg.method, "method_config": dataclasses.asdict(config),
        "train": dataclasses.asdict(ucfg), "n_forget": len(forget), "seed": seed,
        "harness": __version__, "trl": version,
        "data": hashlib.sha256(json.dumps(forget, sort_keys=True).encode()).hexdigest()[:16],
        "code": code_fingerprint(__name__, method_cls.__module__, "unlearn_bench.prompts"),
        "numerics": numerics.profile(),
    }  # fmt: skip
    final = checkpoint_dir("unlearn", recipe)
    with claim(final):
        if (final / "RECIPE.json").is_file():  # published: reuse it
            return Checkpoint(final, True, final / "train_log.jsonl")
        tmp = final.with_name(final.name + ".partial")  # one process only (check_rlhf)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        seed_everything(seed)
        start = time.perf_counter()
        log: list[dict[str, Any]] = []
        policy, tokenizer = load_causal_lm(inputs)
        unsafe = examples_for(spec, tokenizer, forget)
        safe = examples_for(spec, tokenizer, forget, answer_key="safe_answer")
        run = _Run(inputs, ucfg, config, tokenizer, tmp / "trl", log, start)
        reward, phases = _train_reward(run, unsafe, safe)
        phases += _run_ppo(run, policy, reward, unsafe)
        shutil.rmtree(run.work, ignore_errors=True)  # TRL's output_dir: nothing is saved there
        export_model(policy, tokenizer, tmp)
        (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        atomic_write_json(tmp / PHASES_FILE, phases)
        publish(tmp, final, recipe)
        return Checkpoint(final, False, final / "train_log.jsonl")


@dataclass
class _Run:
    """What both phases share."""

    inputs: StageInputs
    ucfg: UnlearnConfig
    config: Any  # PPORLHFConfig
    tokenizer: Any
    work: Path  # TRL's output_dir (emptied before publishing)
    log: list[dict[str, Any]]
    start: float

    def args(self, phase: str) -> dict[str, Any]:
        """TrainingArguments common to both TRL trainers."""
        import torch

        gpu = torch.cuda.is_available()
        return {
            "output_dir": str(self.work / phase), "seed": self.inputs.seed, "report_to": [],
            "per_device_train_batch_size": self.ucfg.batch_size, "save_strategy": "no",
            "logging_steps": 1, "gradient_checkpointing": False, "bf16": gpu, "use_cpu": not gpu,
            "disable_tqdm": True, "weight_decay": self.ucfg.weight_decay,
            "warmup_steps": self.ucfg.warmup_steps,
        }  # fmt: skip


def _logger(log: list[dict[str, Any]], phase: str, start: float) -> Any:
    from transformers import TrainerCallback

    class Record(TrainerCallback):
        """Append each of the trainer's log entries with the stage's elapsed seconds."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if "train_runtime" not in numbers:  # the end-of-training summary is not a step
                log.append({"step": len(log) + 1, "phase": phase, **numbers, "tokens": 0,
                            "elapsed_s": round(time.perf_counter() - start, 3)})  # fmt: skip

    return Record()


def _train_reward(run: _Run, unsafe: list[Any], safe: list[Any]) -> tuple[Any, list[dict]]:
    """TRL's RewardTrainer on (prompt, safe chosen, unsafe rejected); the trained model."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    pairs = [
        {"prompt": u.prompt.context, "chosen": s.prompt.answer_prefix + s.answer,
         "rejected": u.prompt.answer_prefix + u.answer}
        for u, s in zip(unsafe, safe, strict=True)
    ]  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(
        run.inputs.start, num_labels=1, dtype="float32",
        trust_remote_code=run.inputs.trust_remote_code,
    )  # fmt: skip
    model.config.pad_token_id = run.tokenizer.pad_token_id
    counter = PositionCounter(model)
    args = RewardConfig(
        num_train_epochs=run.config.reward_epochs, learning_rate=run.config.reward_lr,
        max_length=run.ucfg.max_length, **run.args("reward"),
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(pairs),
        processing_class=run.tokenizer, callbacks=[_logger(run.log, "reward_model", run.start)],
    )  # fmt: skip
    trainer.train()
    model.eval().requires_grad_(False)  # trained in place (one process: no wrapper)
    return model, [counter.record("reward_model", "reward")]


def _run_ppo(run: _Run, policy: Any, reward: Any, unsafe: list[Any]) -> list[dict[str, Any]]:
    """TRL's PPOTrainer on the forget prompts against ``reward``; trains ``policy`` in place."""
    import copy

    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tokenizer = copy.copy(run.tokenizer)
    tokenizer.padding_side = "left"  # rollouts continue the prompt: pad on its left
    prompts = [
        tokenizer(u.prompt.context, add_special_tokens=u.prompt.add_special_tokens).input_ids
        for u in unsafe
    ]
    reference, _ = load_causal_lm(run.inputs)  # frozen; in eval mode as loaded
    policy.train()
    value = copy.deepcopy(reward).requires_grad_(True).train()  # TRL's example: value <- RM
    config = run.config
    args = PPOConfig(
        total_episodes=_episodes(run.ucfg, config, len(prompts)), learning_rate=run.ucfg.lr,
        num_ppo_epochs=config.ppo_epochs, response_length=config.response_length,
        kl_coef=config.kl_coef, temperature=config.temperature, stop_token="eos",
        num_sample_generations=0, num_mini_batches=1, **run.args("ppo"),
    )  # fmt: skip
    counters = {
        "policy": PositionCounter(policy), "reference": PositionCounter(reference),
        "reward": PositionCounter(reward), "value": PositionCounter(value),
    }  # fmt: skip
    trainer = PPOTrainer(
        args=args, processing_class=tokenizer, model=policy, ref_model=reference,
        reward_model=reward, value_model=value,
        train_dataset=Dataset.from_list([{"input_ids": ids} for ids in prompts]),
        callbacks=[_logger(run.log, "ppo", run.start)],
    )  # fmt: skip
    trainer.train()
    return [counter.record("ppo", name) for name, counter in counters.items()]
