"""Weight snapshots taken during training: the best checkpoint so far and the last good one.

A snapshot holds only the trainable tensors (all weights for full fine-tuning, the adapter for
LoRA) as one safetensors file, so taking one is cheap and restoring it is an overlay on the live
model. When parameters are sharded across processes (FSDP, DeepSpeed ZeRO-3) every process
joins the gather (``accelerator.get_state_dict``) and only the main process writes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unlearn_bench.errors import UnlearnBenchError


def params_sharded(accelerator: Any) -> bool:
    """True when no single process holds the full weights."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return False
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def _fsdp1_on_cpu(model: torch.nn.Module) -> bool:
    """Whether ``model`` is wrapped by FSDP1 with its (sharded) parameters on the CPU."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if not isinstance(model, FSDP):
        return False
    return next(model.parameters()).device.type == "cpu"


def _fsdp1_cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of an FSDP1 model on CPU processes, gathered on rank 0.

    accelerate's ``get_state_dict`` asks FSDP to offload the gathered tensors to the CPU; with
    torch 2.13 that crashes rank 0 (SIGSEGV) when the parameters already live on the CPU, so
    gather without the offload. Every process must call this; only rank 0 gets the tensors.
    """
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    config = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, config):
        return model.state_dict()


def kept_dir(work_dir: Path) -> Path:
    """Where a failed run's last good checkpoint goes: beside the work folder, never inside it.

    A stage's work folder ``<name>.partial`` is removed when the stage fails or reruns
    (train/checkpointing.py), so the model the user was told about goes to ``<name>.last_good``;
    any other work folder keeps it in ``<work_dir>/last_good``.
    """
    if work_dir.name.endswith(".partial"):
        return work_dir.with_name(work_dir.name.removesuffix(".partial") + ".last_good")
    return work_dir / "last_good"


class Snapshots:
    """Save, restore and export trainable-weight snapshots of a prepared model."""

    def __init__(
        self,
        accelerator: Any,
        model: torch.nn.Module,
        names: list[str],
        folder: Path,
        rebuild: Callable[[], torch.nn.Module] | None,
    ) -> None:
        self.accelerator, self.model, self.names = accelerator, model, names
        self.folder, self.rebuild = folder, rebuild
        self.sharded = params_sharded(accelerator)
        self.steps: dict[str, int] = {}  # tag -> step of the snapshot on disk

    def _gather(self) -> dict[str, torch.Tensor] | None:
        """The full state dict on the main process (None elsewhere); every process calls it."""
        acc = self.accelerator
        if self.sharded and _fsdp1_on_cpu(self.model):
            state = _fsdp1_cpu_state_dict(self.model)
        elif self.sharded:
            state = acc.get_state_dict(self.model)
        else:
            state = acc.unwrap_model(self.model).state_dict()
        return state if acc.is_main_process else None

    def save(self, tag: str, step: int) -> None:
        """Write the trainable tensors as ``<folder>/<tag>.safetensors`` (main process)."""
        from safetensors.torch import save_file

        state = self._gather()
        if tag == "last" and "last" in self.steps:
            self.steps["previous"] = self.steps["last"]
        self.steps[tag] = step
        if state is None:
            return
        missing = [n for n in self.names if n not in state]
        if missing:
            raise UnlearnBenchError(f"snapshot: parameter {missing[0]!r} not in the state dict")
        # Clones: tied weights share storage, which safetensors refuses to write.
        tensors = {n: state[n].detach().to("cpu", copy=True).contiguous() for n in self.names}
        self.folder.mkdir(parents=True, exist_ok=True)
        if tag == "last" and (self.folder / "last.safetensors").is_file():
            (self.folder / "last.safetensors").replace(self.folder / "previous.safetensors")
        tmp = self.folder / f".{tag}.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"step": str(step)})
        tmp.replace(self.folder / f"{tag}.safetensors")

    def _complete_model(self, overlay: str | None) -> torch.nn.Module:
        """A model holding full weights (main process), with snapshot ``overlay`` loaded."""
        acc = self.accelerator
        if self.sharded:
            state = self._gather()
            if self.rebuild is None:
                raise UnlearnBenchError("sharded training needs a rebuild function to save")
            model = self.rebuild() if acc.is_main_process else acc.unwrap_model(self.model)
            if state is not None:
                model.load_state_dict(state, strict=False)
        else:
            model = acc.unwrap_model(self.model)
        if overlay is not None and acc.is_main_process:
            from safetensors.torch import load_file

            loaded = load_file(str(self.folder / f"{overlay}.safetensors"))
            result = model.load_state_dict(loaded, strict=False)
            if result.unexpected_keys:
                raise UnlearnBenchError(f"snapshot has unknown tensors {result.unexpected_keys}")
        return model

    def final_model(self, best_step: int | None) -> torch.nn.Module:
        """The model to save: the live weights, or the best snapshot when one was selected."""
        overlay = "best" if best_step is not None and "best" in self.steps else None
        model = self._complete_model(overlay)
        if self.accelerator.is_main_process:
            shutil.rmtree(self.folder, ignore_errors=True)  # never ship snapshots in a checkpoint
        return model

    def fail(
        self,
        step: int,
        loss: float,
        desc: str,
        export: Callable[[torch.nn.Module, Path], None] | None,
    ) -> None:
        """Stop on a non-finite loss, exporting the last good snapshot first; always raises."""
        message = f"{desc}: loss became {loss} at step {step}; stopped."
        # Weights saved after step s are known good only once step s + 1 ran on them with a
        # finite loss, i.e. s <= step - 2; a snapshot from step - 1 made this very loss.
        good = [t for t in ("last", "previous") if self.steps.get(t, step) <= step - 2]
        if good and export is not None:
            target = kept_dir(self.folder.parent)
            model = self._complete_model(good[0])
            if self.accelerator.is_main_process:
                shutil.rmtree(target, ignore_errors=True)  # an older run's copy of this stage
                export(model, target)
                log = self.folder.parent / "train_log.jsonl"  # the steps up to the divergence
                if log.is_file() and target.is_dir():
                    shutil.copyfile(log, target / "train_log.jsonl")
            message += f" Last good checkpoint (step {self.steps[good[0]]}): {target}."
        else:
            message += " No checkpoint was taken before it (set save_every to keep one)."
        raise UnlearnBenchError(message + " Try a lower learning rate.")
