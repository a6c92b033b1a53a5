"""The collapse check's per-step signals, read from the unlearning method's own forward pass.

:mod:`unlearn_bench.train.collapse` says what the signals are and why; this module says where
they come from without costing a forward pass of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from unlearn_bench.train.collapse import uniformity_stats, watch_forget

if TYPE_CHECKING:
    import torch

    from unlearn_bench.methods.base import TokenBatch


class ForgetWatch:
    """The collapse signals of each step, from the method's own forward pass on the forget batch.

    The unlearning loop used to run one extra no-grad forward per micro-batch for them (~+29%
    on a gradient-ascent step). Every method already runs the trained model on the forget
    batch; a forward hook keeps (detached) the logits of the first such call, made on the
    exact ``input_ids`` and ``attention_mask`` tensors of the batch, with the weights the loss
    sees. Reading them changes nothing in the training graph, so the parameters after N steps
    are bit-identical with and without the check (tests/reliability/test_collapse_watch.py).
    A method that never makes that call gets the extra pass, run after its loss inside a forked
    RNG so that dropout masks, if any, are what they would be without the check.
    """

    def __init__(self) -> None:
        self.logits: torch.Tensor | None = None
        self.reused = 0  # micro-batches whose signals came from the method's forward
        self.extra = 0  # micro-batches that needed the extra pass

    @contextmanager
    def capture(self, model: Any, part: TokenBatch) -> Iterator[None]:
        """Keep the logits of ``model``'s first forward on ``part`` inside the block."""
        self.logits = None

        def keep(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            logits = getattr(output, "logits", None)
            if (
                self.logits is None
                and logits is not None
                and kwargs.get("input_ids") is part.input_ids
                and kwargs.get("attention_mask") is part.attention_mask
            ):
                self.logits = logits.detach()

        handle = model.register_forward_hook(keep, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def stats(self, model: Any, part: TokenBatch) -> dict[str, float]:
        """:func:`uniformity_stats` of the captured logits, else of one extra no-grad pass."""
        import torch

        logits, self.logits = self.logits, None
        if logits is not None:
            self.reused += 1
            with torch.no_grad():
                return uniformity_stats(logits, part.labels)
        self.extra += 1
        devices = [part.input_ids.device] if part.input_ids.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return watch_forget(model, part)
