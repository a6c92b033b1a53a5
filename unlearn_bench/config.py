"""RunConfig: one validated object built from CLI flags, a YAML file or Python kwargs.

Unknown keys anywhere are errors (a typo must never silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.train.controls import ControlConfig
from unlearn_bench.train.lora import LoraSettings
from unlearn_bench.yaml_strict import load_yaml


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
        import re

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
    batch_size: int = 16
    max_new_tokens: int | None = None  # None: the task's own setting
    limit: int | None = None  # evaluate at most this many items per eval set (smoke runs)


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
class RunConfig:
    """Everything a run needs; ``runner.run_protocol`` turns it into run records."""

    task: str
    model: str = "smollm2-135m"
    backend: str = "hf"
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
    cache: bool = True
    trust_remote_code: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, "config")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        data = load_yaml(path)
        data.update(overrides or {})
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UnlearnBenchError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UnlearnBenchError(
            f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UnlearnBenchError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        return _coerce(non_none[0], value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, where)  # type: ignore[arg-type]
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UnlearnBenchError(f"{where} must be a mapping")
        return dict(value)
    if hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        # PyYAML reads "1e-5" (no dot) as a string; accept any numeric spelling.
        try:
            return float(value)
        except ValueError:
            raise UnlearnBenchError(f"{where} must be a number, got {value!r}") from None
    if hint in (int, str, bool) and type(value) is not hint:
        raise UnlearnBenchError(f"{where} must be {hint.__name__}, got {value!r}")
    if hint is float and not isinstance(value, float):
        raise UnlearnBenchError(f"{where} must be a number, got {value!r}")
    return value
