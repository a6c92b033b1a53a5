"""Multi-process helpers: which process writes, and how processes wait for each other.

The same ``unlearn-bench run`` command runs as one process or under a launcher that starts
several (``accelerate launch -m unlearn_bench.cli run ...`` on GPUs, ``torchrun
--nproc_per_node N -m unlearn_bench.cli run ...`` on CPUs, see configs/accelerate/README.md).
Launchers announce themselves through the ``WORLD_SIZE``/``RANK`` environment variables, so the
cheap questions (how many processes? am I the main one?) are answered without importing torch.
Every process trains (data-parallel); only the main process writes checkpoints and records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from unlearn_bench.errors import UnlearnBenchError


def world_size() -> int:
    """Number of processes the launcher started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """Global rank of this process (0 when run directly)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this is the process that writes (rank 0)."""
    return rank() == 0


def force_cpu() -> bool:
    """True when a launcher started several processes on a machine without CUDA.

    accelerate only picks its multi-CPU (gloo) mode when told to use the CPU; without this a
    ``torchrun`` launch on a CPU box would leave every process training alone, unsynchronised.
    """
    if world_size() <= 1:
        return False
    import torch

    return not torch.cuda.is_available()


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("true", "1", "yes")


def check_launch() -> None:
    """Refuse, in one line, a launcher setup that cannot train on this machine.

    Called by the CLI before any work. Launchers pass their config down as environment
    variables (``ACCELERATE_USE_DEEPSPEED``, ``ACCELERATE_USE_FSDP``, ``FSDP_*``), so this
    reads those; it imports torch only when one of them asks for DeepSpeed or FSDP.
    """
    deepspeed, fsdp = _flag("ACCELERATE_USE_DEEPSPEED"), _flag("ACCELERATE_USE_FSDP")
    if not (deepspeed or fsdp):
        return
    import torch

    if torch.cuda.is_available():
        return
    if deepspeed:
        import importlib.util

        missing = "" if importlib.util.find_spec("deepspeed") else " and the deepspeed package"
        raise UnlearnBenchError(
            f"DeepSpeed needs CUDA GPUs{missing}: this machine has no CUDA device; on CPU "
            "use configs/accelerate/fsdp_cpu.yaml (FSDP) or torchrun (DDP), see "
            "configs/accelerate/README.md"
        )
    if _flag("FSDP_SYNC_MODULE_STATES"):
        raise UnlearnBenchError(
            "FSDP on CPU needs fsdp_sync_module_states: false (torch's FSDP cannot sync module "
            "states on CPU); use configs/accelerate/fsdp_cpu.yaml"
        )


def state() -> Any:
    """The accelerate process state, created once with the same CPU choice as the trainer's."""
    from accelerate import PartialState

    return PartialState(cpu=force_cpu())


def barrier() -> None:
    """Wait until every process gets here (no-op for a single process)."""
    if world_size() > 1:
        state().wait_for_everyone()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Let the main process run the block first (e.g. a one-time model conversion)."""
    if world_size() <= 1:
        yield
        return
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()
