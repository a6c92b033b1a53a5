"""What a stage cost: wall seconds, tokens, a FLOP estimate, peak memory, device, processes.

FLOP estimate (the usual dense-transformer approximation, attention scores left out):

- training: ``(4 * N_total + 2 * N_trained) * tokens``. A forward pass costs 2 FLOPs per
  parameter per token; the backward pass costs 2 more for the activation gradients through every
  layer and 2 more for the weight gradients of the trained parameters only. With every parameter
  trained this is the familiar ``6 * N * tokens``. With LoRA the adapters stay unmerged while
  training, so every token passes through the base weights and the adapters: N_total is the
  merged model's parameters plus the adapters' (read from ``<checkpoint>/adapter``) and
  N_trained the adapters' alone. A LoRA checkpoint without its adapter file gets no estimate.
- inference (evaluation): ``2 * N * tokens``, tokens counted by a forward pre-hook on the
  evaluated model's body (:class:`PositionCounter`; HF backend only) and N its matmul
  parameters.

Training tokens are counted where the compute happens: a forward pre-hook on each model's
transformer body (:class:`TokenTally`) counts the non-pad tokens of every pass the method's loss
makes, split into passes of the trained model with autograd on (``tokens``: forward and
backward), without it (``forward_only_tokens``) and of the frozen reference model
(``reference_tokens``: NPO, DPO, KL retain terms); each is a column of ``train_log.jsonl``.
A part of the batch that the loss never runs through a model costs nothing, and the collapse
check's own pass (run only for a method that never runs the forget part) is bookkeeping, not
the method's, so it is left out. Training FLOPs are
``(4 N_total + 2 N_trained) tokens + 2 N_total forward_only_tokens + 2 N_ref reference_tokens``,
N_ref the start model's parameters. Logs written before the hooks (no ``forward_only_tokens``
column) counted every batch part's tokens as trained; their records say so.
:func:`measured_step_flops` counts one step with ``torch.utils.flop_counter.FlopCounterMode``
so the formula's error is known.
"""

from __future__ import annotations

import json
import re
import resource
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unlearn_bench.paths import read_json, read_jsonl

FORMULA = (
    "train: (4*N_total + 2*N_trained)*tokens + 2*N_total*forward_only_tokens"
    " + 2*N_ref*reference_tokens (= 6*N*tokens with every parameter trained and no other pass);"
    " eval: 2*N*tokens"
)
TOKEN_COUNT_HOOKED = "non-pad tokens of each pass the method's loss makes (forward pre-hooks)"
TOKEN_COUNT_PARTS = (
    "every batch part's non-pad tokens, counted as trained (logs from before the hooks: "
    "reference passes missing, unused parts included)"
)
#: A stage with several models (RLHF: policy, reference, reward, value) writes its counts here.
PHASES_FILE = "cost_phases.json"
PHASED_FORMULA = "per model and phase: 2*N per forward-only token + 6*N per trained token"


def train_flops(n_total: int, n_trained: int, tokens: int) -> int:
    """Estimated FLOPs of training ``tokens`` tokens (forward + backward)."""
    return (4 * n_total + 2 * n_trained) * tokens


def inference_flops(n_total: int, tokens: int) -> int:
    """Estimated FLOPs of ``tokens`` tokens through a forward pass."""
    return 2 * n_total * tokens


def safetensors_shapes(model_dir: Path) -> dict[str, int]:
    """Parameter name -> element count, read from the safetensors headers (no weights loaded)."""
    counts: dict[str, int] = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, meta in header.items():
            if name != "__metadata__":
                n = 1
                for dim in meta["shape"]:
                    n *= int(dim)
                counts[name] = n
    return counts


def parameter_counts(model_dir: Path, trainable: str | None) -> tuple[int, int]:
    """(N_total, N_trained) of a saved model; ``trainable`` is a name regex, None or "all"."""
    counts = safetensors_shapes(model_dir)
    total = sum(counts.values())
    if trainable in (None, "all"):
        return total, total
    regex = re.compile(trainable)
    return total, sum(n for name, n in counts.items() if regex.search(name))


def lora_parameter_counts(model_dir: Path, trainable: str | None) -> tuple[int, int] | None:
    """(N_total, N_trained) of a LoRA stage: merged model + adapters, and the adapters.

    None when the checkpoint has no adapter file to count (the estimate is then withheld).
    """
    from unlearn_bench.train.lora import ADAPTER_DIR

    adapter = safetensors_shapes(Path(model_dir) / ADAPTER_DIR)
    if not adapter:
        return None
    base_total, _ = parameter_counts(model_dir, None)
    regex = None if trainable in (None, "all") else re.compile(trainable)
    trained = sum(n for name, n in adapter.items() if regex is None or regex.search(name))
    return base_total + sum(adapter.values()), trained


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _device_memory() -> tuple[str, int | None]:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(), int(torch.cuda.max_memory_allocated())
    return "cpu", None


def train_stage_cost(
    model_dir: Path, trainable: str | None, lora: bool, processes: int
) -> dict[str, Any]:
    """The cost record of a finished finetune or unlearn stage, from its checkpoint folder.

    Wall seconds and tokens come from the stage's own ``train_log.jsonl``, so a stage served
    from the cache reports what it cost when it ran. Peak memory is this process's so far.
    """
    log = model_dir / "train_log.jsonl"
    rows = read_jsonl(log) if log.is_file() else []
    if (model_dir / PHASES_FILE).is_file():
        return _phased_cost(model_dir, rows, processes)
    tokens = sum(int(r.get("tokens", 0)) for r in rows)
    forward_only = sum(int(r.get("forward_only_tokens", 0)) for r in rows)
    reference = sum(int(r.get("reference_tokens", 0)) for r in rows)
    counts = lora_parameter_counts(model_dir, trainable) if lora else None
    n_total, n_trained = counts or parameter_counts(model_dir, trainable)
    n_ref = parameter_counts(model_dir, None)[0]  # the start model's size (LoRA: without adapters)
    device, gpu_peak = _device_memory()
    known = counts is not None or not lora
    flops = (
        train_flops(n_total, n_trained, tokens)
        + inference_flops(n_total, forward_only)
        + inference_flops(n_ref, reference)
    )
    hooked = any("forward_only_tokens" in r for r in rows)
    cost: dict[str, Any] = {
        "wall_s": float(rows[-1]["elapsed_s"]) if rows else 0.0, "steps": len(rows),
        "forward_tokens": tokens + forward_only + reference, "backward_tokens": tokens,
        "forward_only_tokens": forward_only, "reference_tokens": reference,
        "n_total": n_total, "n_trained": n_trained if known else None, "formula": FORMULA,
        "flops": flops if known else None,
        "token_count": TOKEN_COUNT_HOOKED if hooked or not rows else TOKEN_COUNT_PARTS,
        "peak_rss_bytes": peak_rss_bytes(), "gpu_peak_bytes": gpu_peak, "device": device,
        "processes": processes,
    }  # fmt: skip
    if lora and counts is not None:
        cost["lora_n"] = "N_total = merged model + LoRA adapters; N_trained = adapters"
    elif lora:
        cost["flops_withheld"] = "LoRA: the checkpoint has no adapter file to count"
    return cost


def _phased_cost(model_dir: Path, rows: list[dict[str, Any]], processes: int) -> dict[str, Any]:
    """The cost of a stage that counted its models' tokens itself (the RLHF stage)."""
    phases = read_json(model_dir / PHASES_FILE, list)
    n_total, _ = parameter_counts(model_dir, None)
    device, gpu_peak = _device_memory()
    return {
        "wall_s": float(rows[-1]["elapsed_s"]) if rows else 0.0, "steps": len(rows),
        "forward_tokens": sum(p["forward_only_tokens"] + p["trained_tokens"] for p in phases),
        "backward_tokens": sum(p["trained_tokens"] for p in phases), "n_total": n_total,
        "n_trained": n_total, "formula": PHASED_FORMULA, "phases": phases,
        "flops": sum(p["flops"] for p in phases), "peak_rss_bytes": peak_rss_bytes(),
        "gpu_peak_bytes": gpu_peak, "device": device, "processes": processes,
    }  # fmt: skip


def eval_counter(backend: Any) -> PositionCounter | None:
    """A token counter on the evaluated model, when the backend holds it in this process.

    The HF backend does (behind the response cache too), and so does ``auto`` without vLLM;
    vLLM runs its own engine and the fake backend has no model, so their evaluation FLOPs (and
    auto's when vLLM takes part) are withheld.
    """
    inner = getattr(backend, "inner", backend)
    if hasattr(inner, "sole_hf"):  # backend auto: counted only when HF makes every pass
        inner = inner.sole_hf()
    model = getattr(inner, "model", None)
    if model is None or not hasattr(model, "base_model_prefix"):
        return None
    return PositionCounter(model)


def eval_stage_cost(
    model_dir: str, wall_s: float, counter: PositionCounter | None = None
) -> dict[str, Any]:
    """The cost record of an evaluate stage: tokens the model processed, when counted."""
    counts = safetensors_shapes(Path(model_dir)) if Path(model_dir).is_dir() else {}
    device, gpu_peak = _device_memory()
    cost: dict[str, Any] = {
        "wall_s": round(wall_s, 3), "n_total": sum(counts.values()) or None, "flops": None,
        "peak_rss_bytes": peak_rss_bytes(), "gpu_peak_bytes": gpu_peak, "device": device,
        "processes": 1,
    }  # fmt: skip
    if counter is None:
        cost["flops_withheld"] = "this backend's model is not in the runner's process"
        return cost
    counted = counter.record("evaluate", "evaluated")
    cost.update(
        forward_tokens=counted["forward_only_tokens"] + counted["trained_tokens"],
        flops=counted["flops"], n_counted=counted["n"],
        counted="positions through the evaluated model (generation, scoring, lm-eval); judges' "
        "and reference models' passes and cached responses cost none here",
    )  # fmt: skip
    return cost


def matmul_params(model: Any) -> int:
    """Parameters a token's forward pass multiplies by: all but an untied input embedding."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = output is not None and output.weight is embedding
    return total if tied else total - embedding.numel()


class PositionCounter:
    """Token positions through a model's transformer body, with and without autograd."""

    def __init__(self, model: Any) -> None:
        import torch

        self.forward_only = 0
        self.trained = 0
        self.n = matmul_params(model)
        body = getattr(model, model.base_model_prefix)

        def count(_module: Any, args: tuple, kwargs: dict) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
            if torch.is_grad_enabled():
                self.trained += int(shape[0] * shape[1])
            else:
                self.forward_only += int(shape[0] * shape[1])

        self.handle = body.register_forward_pre_hook(count, with_kwargs=True)

    def record(self, phase: str, model: str) -> dict[str, Any]:
        """The counts and FLOPs of this model in ``phase``; stops counting."""
        self.handle.remove()
        flops = inference_flops(self.n, self.forward_only) + train_flops(
            self.n, self.n, self.trained
        )
        return {"phase": phase, "model": model, "n": self.n, "forward_only_tokens":
                self.forward_only, "trained_tokens": self.trained, "flops": flops}  # fmt: skip


def measured_step_flops(model: Any, input_ids: Any, attention_mask: Any) -> int:
    """FLOPs of one forward + backward pass as counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids)
        out.loss.backward()
    return int(counter.get_total_flops())


class TokenTally:
    """Non-pad tokens through the trained model (with / without autograd) and the reference.

    Forward pre-hooks on each model's transformer body count only while :meth:`active` is
    entered (around the method's loss), so bookkeeping passes are left out. :meth:`take`
    returns the counts since the last call, as ``train_log.jsonl`` columns.
    """

    def __init__(self, trained: Any, reference: Any | None = None) -> None:
        self.counts = {"tokens": 0, "forward_only_tokens": 0, "reference_tokens": 0}
        self.on = False
        self.handles = [_count_hook(trained, self._trained)]
        if reference is not None:
            self.handles.append(_count_hook(reference, self._reference))

    def _trained(self, n: int, grad: bool) -> None:
        if self.on:
            self.counts["tokens" if grad else "forward_only_tokens"] += n

    def _reference(self, n: int, grad: bool) -> None:
        if self.on:
            self.counts["reference_tokens"] += n

    @contextmanager
    def active(self) -> Iterator[None]:
        """Count the passes made inside this block."""
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def take(self) -> dict[str, int]:
        """The counts since the last call; resets them."""
        out, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        return out

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self.handles:
            handle.remove()


def _count_hook(model: Any, add: Callable[[int, bool], None]) -> Any:
    """A pre-hook on ``model``'s body calling ``add(non-pad tokens, autograd on)`` per pass."""
    import torch

    body = getattr(model, model.base_model_prefix, model)

    def count(_module: Any, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            n = int(mask.sum())
        else:
            ids = kwargs.get("input_ids", args[0] if args else None)
            shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
            n = int(shape[0] * shape[1])
        add(n, torch.is_grad_enabled())

    return body.register_forward_pre_hook(count, with_kwargs=True)
