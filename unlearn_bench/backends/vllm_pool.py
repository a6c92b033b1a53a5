"""One vLLM engine per run: the next model of the same shape reuses it with its weights swapped.

A protocol run evaluates several models of one architecture (target, retain, each unlearned
model), and starting a vLLM engine costs 16-25 s on 2 CPU cores. Inside :func:`shared_engines`
(the runner opens it around a run) a backend asks the process-wide pool for its engine instead of
starting its own. The pool holds at most one engine, keyed by everything that shapes the engine
except the weights (:func:`engine_key`):

- the same key and the same weights folder: the running engine is used as it is;
- the same key, other weights: the weights are reloaded in place (``vllm_worker.WeightSwap``:
  vLLM's reload, then the CPU LM-head preparation redone) and the prefix cache is emptied, so no
  cached state of the old model can be read;
- another key (architecture, tokenizer, dtype, engine settings): the old engine is shut down and
  a new one started.

A swap that vLLM reports as incomplete, or that fails, shuts the engine down and starts a fresh
one, and the backend's stats say so. Nothing here changes what a backend's identity records:
only its stats count starts, swaps and reuses. Outside the scope every backend owns its engine,
as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearn_bench.backends import vllm_engine as engine

#: config.json fields that name or describe the saved files, not the model: a fine-tuned copy
#: differs from its base in these alone.
_NOT_ARCHITECTURE = ("_name_or_path", "torch_dtype", "dtype", "transformers_version")


def config_digest(model_dir: str) -> str | None:
    """sha256 of config.json (less file-naming fields) and generation_config.json, or None.

    None for a model that is not a local folder: such an engine is reused only for the very
    same model, never swapped.
    """
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        return None
    config = json.loads((folder / "config.json").read_text())
    for field in _NOT_ARCHITECTURE:
        config.pop(field, None)
    generation = folder / "generation_config.json"
    extra = json.loads(generation.read_text()) if generation.is_file() else {}
    extra.pop("transformers_version", None)
    text = json.dumps([config, extra], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def engine_key(spec: engine.EngineSpec, tokenizer_sha256: str) -> tuple[Any, ...]:
    """What must match for one engine to serve another model: all but the weights' folder."""
    digest = config_digest(spec.model)
    if digest is None:
        return (spec, tokenizer_sha256)
    settings = dataclasses.replace(spec, model="", tokenizer="", revision=None)
    return (settings, digest, tokenizer_sha256)


@dataclass
class _Slot:
    """The pooled engine: its key, the weights it holds, and the backend that used it last."""

    key: tuple[Any, ...]
    llm: Any
    log_path: Path
    weights: str
    user: int


@dataclass
class Lease:
    """What :meth:`EnginePool.acquire` hands a backend, and what it had to do for it."""

    llm: Any
    log_path: Path
    event: str | None  # "started", "swapped", "reused", "restarted"; None: already the user's
    seconds: float


class EnginePool:
    """At most one running engine, shared by the backends of one run (see module docstring)."""

    def __init__(self) -> None:
        self.depth = 0
        self.slot: _Slot | None = None
        self.lock = threading.RLock()

    @property
    def active(self) -> bool:
        """True inside :func:`shared_engines`."""
        return self.depth > 0

    def acquire(
        self, spec: engine.EngineSpec, tokenizer_sha256: str, on_cpu: bool, user: object
    ) -> Lease:
        """An engine serving ``spec``'s weights, started, swapped or reused."""
        key = engine_key(spec, tokenizer_sha256)
        with self.lock:
            start = time.perf_counter()
            slot = self.slot
            if slot is not None and slot.key == key:
                if slot.weights == spec.model:
                    event = None if slot.user == id(user) else "reused"
                    slot.user = id(user)
                    return Lease(slot.llm, slot.log_path, event, 0.0)
                if swap_weights(slot.llm, spec.model):
                    slot.weights, slot.user = spec.model, id(user)
                    return Lease(slot.llm, slot.log_path, "swapped", time.perf_counter() - start)
                event = "restarted"  # the swap was incomplete: a fresh engine instead
            else:
                event = "started"
            self.discard()
            llm, log_path = engine.start_engine(spec, on_cpu)
            self.slot = _Slot(key, llm, log_path, spec.model, id(user))
            return Lease(llm, log_path, event, time.perf_counter() - start)

    def discard(self) -> None:
        """Shut the pooled engine down (after an engine failure, or at the end of the scope)."""
        with self.lock:
            slot, self.slot = self.slot, None
            if slot is not None:
                engine.shutdown_engine(slot.llm)


def swap_weights(llm: Any, weights_dir: str) -> bool:
    """Load ``weights_dir`` into the running engine and empty its prefix cache; False: not done.

    False when the folder is not local, when vLLM says some tensor kept its old value, when the
    worker call fails, or when the prefix cache cannot be emptied: the caller starts afresh.
    """
    if not Path(weights_dir).is_dir():
        return False
    try:
        reports = llm.collective_rpc("unlearn_bench_swap_weights", args=(weights_dir,))
    except Exception:  # noqa: BLE001 - a half-done reload: this engine must not be used again
        return False
    if any(report.get("incomplete") for report in reports):
        return False
    return bool(llm.reset_prefix_cache())


POOL = EnginePool()


@contextmanager
def shared_engines() -> Iterator[EnginePool]:
    """Within the block, vLLM backends share one engine; it is shut down when the block ends."""
    with POOL.lock:
        POOL.depth += 1
    try:
        yield POOL
    finally:
        with POOL.lock:
            POOL.depth -= 1
            if POOL.depth == 0:
                POOL.discard()
