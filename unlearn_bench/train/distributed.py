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
