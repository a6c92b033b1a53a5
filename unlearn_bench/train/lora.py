"""LoRA through peft: an option on every method; full fine-tuning stays the default.

LoRA (Hu et al. 2021, arXiv 2106.09685) freezes W and trains a low-rank update,
W' = W + (alpha / r) B A with A (r x k), B (d x r) and B initialised to 0, so training starts
exactly at the original model. A finished LoRA stage writes the adapter on its own
(``<checkpoint>/adapter/``, loadable with ``peft.PeftModel.from_pretrained``) and the merged
model at the checkpoint root, which is what evaluation loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unlearn_bench.config import LoraSettings
from unlearn_bench.errors import UnlearnBenchError

ADAPTER_DIR = "adapter"


def _require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise UnlearnBenchError(
            "lora needs peft: pip install 'unlearn-bench[lora]' (or pip install peft)"
        ) from None
    return peft


def apply_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap ``model`` with fresh LoRA adapters; only the adapter weights stay trainable."""
    peft = _require_peft()
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module name the model does not have
        raise UnlearnBenchError(f"lora: {exc}") from None


def is_lora_model(model: Any) -> bool:
    """Whether ``model`` is a peft LoRA-wrapped model."""
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def save_adapter_and_merge(model: Any, out_dir: Path) -> Any:
    """Write the adapter to ``out_dir/adapter`` and return the merged plain model.

    Merging folds (alpha / r) B A into W in place (``merge_and_unload``), so the returned model
    is an ordinary transformers model that any backend can load without peft.
    """
    model.save_pretrained(out_dir / ADAPTER_DIR)
    return model.merge_and_unload()


def load_merged(base_path: str | Path, adapter_dir: str | Path) -> Any:
    """Load ``base_path``, apply the adapter from ``adapter_dir`` and merge it (for users/tests)."""
    peft = _require_peft()
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype="float32")
    return peft.PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
