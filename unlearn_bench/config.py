"""RunConfig: one validated object built from CLI flags, a YAML file or Python kwargs.

Unknown keys anywhere are errors (a typo must never silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.yaml_strict import build_dataclass, load_yaml

# What --dtype and --device may name (the backends map them to torch / vLLM values).
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:[0-9]+)?")
# A run id or label becomes a folder name: no separators, no "..", no leading dot or dash.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,127}")


def check_positive(where: str, value: float | None, *, zero_ok: bool = False) -> None:
    """Refuse a NaN, infinite, negative (or zero, unless ``zero_ok``) setting before any work."""
    if value is None:
        return
    bad = not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok)
    if isinstance(value, bool) or bad:
        bound = ">= 0" if zero_ok else "> 0"
        raise UnlearnBenchError(f"{where} must be a finite number {bound}, got {value!r}")


def check_folder_name(where: str, value: str | None, *, nested: bool = False) -> None:
    """Refuse a run id or label that could escape its parent folder or name nothing.

    ``nested``: '/'-separated safe segments are allowed (a sweep's cells: ``sweep/cell``).
    """
    parts = value.split("/") if nested and value is not None else [value]
    if value is not None and not all(p is not None and _SAFE_NAME.fullmatch(p) for p in parts):
        raise UnlearnBenchError(
            f"{where} {value!r} is not a valid folder name: use letters, digits and _ . + = - "
            "(no '..' or empty segment, no leading '.' or '-', at most 128 characters)"
        )


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters (config key ``lora: {r, alpha, dropout, target_modules}``)."""

    r: int = 8
    """Rank of the update B A [LoRA paper: 1-64; peft's default 8]."""
    alpha: float = 16.0
    """Scale numerator: the update is multiplied by alpha / r [peft default 8; 2r is common]."""
    dropout: float = 0.0
    """Dropout on the LoRA branch input [peft default 0]."""
    target_modules: list[str] | None = None
    """Module names to adapt (e.g. [q_proj, v_proj]); None = every linear layer except the
    output head (peft's "all-linear")."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise UnlearnBenchError(f"lora r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise UnlearnBenchError(f"lora alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise UnlearnBenchError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise UnlearnBenchError("lora target_modules must be a non-empty list or null")


SELECT_RULES = {
    "last": "keep the final weights",
    "forget_utility_mean": "maximise ((1 - forget_prob) + retain_prob) / 2 over evaluated steps",
    "utility_floor": "maximise 1 - forget_prob over evaluated steps with "
    "retain_prob >= utility_floor x retain_prob(step 0)",
}


@dataclass(frozen=True)
class ControlConfig:
    """Config key ``control:`` of an unlearning entry; everything is off by default."""

    eval_every: int | None = None
    """Evaluate the probe metrics every N optimiser steps (needed by select and stop rules)."""
    eval_size: int = 16
    """Probe items taken from the start of the forget split and of the retain split."""
    select: str = "last"
    """Checkpoint selection rule, one of SELECT_RULES."""
    utility_floor: float | None = None
    """Fraction in (0, 1] of the starting model's retain_prob that utility must keep."""
    stop_forget_nll: float | None = None
    """Stop once the probe forget NLL reaches this bound (nats per token)."""
    stop_below_floor: bool = False
    """Stop once utility falls under the floor."""
    mix: bool = False
    """Search the mixing weight r after training to meet the utility floor."""
    mix_grid: int = 11
    """Number of evenly spaced r values in [0, 1] to try."""

    def __post_init__(self) -> None:
        if self.select not in SELECT_RULES:
            raise UnlearnBenchError(
                f"control select must be one of {sorted(SELECT_RULES)}, got {self.select!r}"
            )
        if self.eval_every is not None and self.eval_every < 1:
            raise UnlearnBenchError(f"control eval_every must be >= 1, got {self.eval_every}")
        if self.eval_size < 1:
            raise UnlearnBenchError(f"control eval_size must be >= 1, got {self.eval_size}")
        if self.utility_floor is not None and not 0.0 < self.utility_floor <= 1.0:
            raise UnlearnBenchError(
                f"control utility_floor must be in (0, 1], got {self.utility_floor}"
            )
        if self.mix_grid < 2:
            raise UnlearnBenchError(f"control mix_grid must be >= 2, got {self.mix_grid}")
        needs_floor = self.select == "utility_floor" or self.stop_below_floor or self.mix
        if needs_floor and self.utility_floor is None:
            raise UnlearnBenchError("control: this select/stop/mix setting needs utility_floor")
        needs_eval = self.select != "last" or self.stop_forget_nll is not None
        if (needs_eval or self.stop_below_floor) and self.eval_every is None:
            raise UnlearnBenchError("control: selection and early stopping need eval_every")

    @property
    def evaluates(self) -> bool:
        """Whether the probe runs during training or mixing (so probe data is needed)."""
        return self.eval_every is not None or self.mix


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by the finetune and unlearn stages."""

    epochs: float = 1.0
    lr: float = 1e-5
    batch_size: int = 4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_steps: int | None = None  # overrides epochs when set
    grad_accum: int = 1  # effective batch = batch_size x grad_accum x processes
    max_length: int = 256
    save_every: int | None = None  # keep a last-good snapshot every N steps (NaN guard)
    lora: LoraSettings | None = None  # None: full fine-tuning (the default)
    # Regex (re.search) over parameter names: only matches train, the rest stay frozen. None:
    # the method's default set (every parameter, except RMU: WMDP's MLP down-projections).
    trainable: str | None = None

    def __post_init__(self) -> None:
        where = type(self).__name__.removesuffix("Config").lower()
        # max_steps 0 would write the target itself as "unlearned"; epochs 0 trained one step.
        for name in ("epochs", "lr", "batch_size", "max_steps", "grad_accum", "max_length"):
            check_positive(f"{where}.{name}", getattr(self, name))
        for name in ("weight_decay", "warmup_steps"):
            check_positive(f"{where}.{name}", getattr(self, name), zero_ok=True)
        check_positive(f"{where}.save_every", self.save_every)
        if self.trainable is not None:
            try:
                re.compile(self.trainable)
            except re.error as exc:
                raise UnlearnBenchError(
                    f"trainable pattern {self.trainable!r} is not a valid regex: {exc}"
                ) from None


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """Finetuning a base model on a task's ``full`` split (target) and ``retain`` split."""

    epochs: float = 5.0
    lr: float = 1e-4
    batch_size: int = 8


@dataclass(frozen=True)
class UnlearnConfig(TrainConfig):
    """One unlearning method with its optimiser settings and method-specific ``args``."""

    method: str = "grad_ascent"
    label: str | None = None  # row name in leaderboards; defaults to the method name
    args: dict[str, Any] = field(default_factory=dict)
    epochs: float = 5.0
    lr: float = 1e-5
    control: ControlConfig = field(default_factory=ControlConfig)  # see controls.py


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings: batch size, a generation-length override and an item limit."""

    batch_size: int = 16
    max_new_tokens: int | None = None  # None: the task's own setting
    limit: int | None = None  # evaluate at most this many items per eval set (smoke runs)

    def __post_init__(self) -> None:
        # A limit of -1 used to drop each set's last item, 0 to fail after evaluating.
        for name in ("batch_size", "max_new_tokens", "limit"):
            check_positive(f"eval.{name}", getattr(self, name))


@dataclass(frozen=True)
class VLLMConfig:
    """Engine settings for backends ``vllm`` and ``auto`` (see docs/vllm.md)."""

    tensor_parallel_size: int = 1  # passed to vllm.LLM as is
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1  # vLLM's offline engine refuses > 1 in one process
    gpu_memory_utilization: float = 0.85  # GPU share for weights + KV cache (leaves room for HF)
    kv_cache_gb: float | None = None  # KV cache size; None: 1 GiB on CPU, auto on GPU
    enforce_eager: bool | None = None  # None: eager on CPU (fast start), compiled on GPU
    max_length: int = 2048  # max_model_len, capped at the model's context length
    enable_prefix_caching: bool = True  # reuse KV blocks of shared prompt prefixes
    lora_adapters: bool = False  # a checkpoint's adapter/ applied per request, unmerged


@dataclass(frozen=True)
class UtilityConfig:
    """lm-evaluation-harness tasks run on every evaluated model (``unlearn_bench.utility``)."""

    tasks: list[str] = field(default_factory=list)  # lm-eval task names, e.g. [wmdp_bio, mmlu]
    data_dir: str | None = None  # local WMDP questions ({bio,chem,cyber}_questions.json.gz)
    include_path: str | None = None  # a folder of the user's own lm-eval task YAML files
    num_fewshot: int | None = None  # None: each task's own setting
    limit: int | None = None  # at most this many documents per task (smoke runs)
    batch_size: int = 8

    def __post_init__(self) -> None:
        for name in ("limit", "batch_size"):
            check_positive(f"utility.{name}", getattr(self, name))


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the robustness probes (``probe_settings:``; see unlearn_bench.probes)."""

    relearn_lr: float = 1e-5
    """Relearning learning rate (AdamW, as the finetune stage)."""
    relearn_batch_size: int = 4
    """Relearning batch size; the steps come from the probe name (``relearn-20``)."""
    temperature: float = 1.0
    """Leak@k sampling temperature."""
    top_p: float = 1.0
    """Leak@k nucleus sampling threshold."""
    leak_k: list[int] | None = None
    """Leak@k's k values; None: 1, 2, 4, ... up to the probe's n."""
    quantize_exclude: list[str] = field(default_factory=lambda: ["lm_head"])
    """Module name patterns the quantizer leaves in full precision (the tied output head)."""

    def __post_init__(self) -> None:
        if (
            not self.relearn_lr > 0
            or not math.isfinite(self.relearn_lr)
            or self.relearn_batch_size < 1
        ):
            raise UnlearnBenchError("probe_settings: relearn_lr must be > 0, batch size >= 1")
        if self.temperature <= 0 or not 0.0 < self.top_p <= 1.0:
            raise UnlearnBenchError("probe_settings: temperature must be > 0, top_p in (0, 1]")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; ``runner.run_protocol`` turns it into run records."""

    task: str
    model: str = "smollm2-135m"
    # auto: vLLM generates where installed, HF scores (the measured fastest split on CPU);
    # without vLLM it is HF alone, with HF's identity (backends/auto.py).
    backend: str = "auto"
    run_id: str | None = None
    runs_dir: str = "runs"
    leaderboards_dir: str = "leaderboards"
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    finetune: FinetuneConfig | None = field(default_factory=FinetuneConfig)
    retain_model: bool = True  # also finetune a retain (oracle) model for forget quality
    unlearn: list[UnlearnConfig] = field(default_factory=lambda: [UnlearnConfig()])
    eval: EvalConfig = field(default_factory=EvalConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)  # used by backends vllm and auto
    reference: str | None = None  # a finished retain run dir, when retain_model is false
    utility: UtilityConfig | None = None  # lm-eval tasks on every evaluated model
    probes: list[str] = field(default_factory=list)  # e.g. [relearn-20, int4, prefix, leak-8]
    probe_settings: ProbeSettings = field(default_factory=ProbeSettings)
    cache: bool = True
    trust_remote_code: bool = False
    # Load a model folder holding only pickle weights (pytorch_model*.bin), with
    # torch.load(weights_only=True) and tensors only; off: such folders are refused.
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        check_folder_name("run id", self.run_id, nested=True)
        for entry in self.unlearn:
            check_folder_name("unlearn label", entry.label or entry.method)
        check_positive("seed", self.seed, zero_ok=True)
        if self.seed >= 2**32:  # numpy's and torch's seeders take 32-bit seeds
            raise UnlearnBenchError(f"seed must be below 2**32, got {self.seed}")
        if self.dtype not in DTYPES:
            raise UnlearnBenchError(f"unknown dtype {self.dtype!r}: {', '.join(DTYPES)}")
        if not _DEVICE.fullmatch(self.device):
            raise UnlearnBenchError(
                f"unknown device {self.device!r}: auto, cpu, cuda, cuda:N, mps or xpu[:N]"
            )
        if not self.model.strip():
            raise UnlearnBenchError("model is empty: name a hub id, a folder or 'smollm2-135m'")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """A validated config from a mapping (unknown keys and wrong types are errors)."""
        return build_dataclass(cls, data, "config")  # type: ignore[no-any-return]

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """A validated config from a YAML file, with ``overrides`` on top."""
        data = load_yaml(path)
        data.update(overrides or {})
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (run headers, fingerprints)."""
        return dataclasses.asdict(self)
