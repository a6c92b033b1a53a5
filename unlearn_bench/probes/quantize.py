"""Weight quantization probe: ``int8`` / ``int4`` (also ``int2``) round-to-nearest weights.

Zhang et al. 2024 (arXiv 2410.16454) find that quantizing an unlearned model to 4 bits brings
back much of the forgotten knowledge. The quantizer is optimum-quanto (chosen by measurement on
this CPU, see docs/probes.md): weight-only symmetric int8 per output channel, and int4 / int2
affine per group along the input dimension (quanto's group size: 128, or the largest multiple
of 32 below it that divides the layer's input width; a layer at most 128 wide, or one no such
size divides, is not grouped: one scale per output row, recorded as group size 0). Linear
layers are quantized; module name
patterns in ``probe_settings.quantize_exclude`` (the tied output head by default) stay as they
are. The target model is quantized the same way, so recovery is measured against a quantized
reference, as the paper does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.probes.base import PROBES, Probe, ProbeContext

if TYPE_CHECKING:
    import torch

    from unlearn_bench.backends.base import Backend

BITS = (8, 4, 2)
"""The integer weight widths optimum-quanto provides (qint8, qint4, qint2)."""


def quantize_weights(model: torch.nn.Module, bits: int, exclude: list[str]) -> dict[str, Any]:
    """Quantize ``model``'s linear weights in place (frozen); returns what the record names."""
    from importlib.metadata import version

    from optimum import quanto

    if bits not in BITS:
        raise UnlearnBenchError(f"quantizer supports {list(BITS)} bits, not {bits}")
    qtype = {8: quanto.qint8, 4: quanto.qint4, 2: quanto.qint2}[bits]
    quanto.quantize(model, weights=qtype, exclude=exclude or None)
    quanto.freeze(model)
    groups = sorted(
        {
            getattr(m, "weight_group_size", None) or 0
            for m in model.modules()
            if isinstance(m, quanto.QModuleMixin)
        }
    )
    return {
        "quantizer": "optimum-quanto",
        "quantizer_version": version("optimum-quanto"),
        "bits": bits,
        "scheme": "weight-only, symmetric per output channel"
        if bits == 8
        else "weight-only, affine per group",
        # 0 stands for "no groups" (one scale per output channel).
        "group_sizes": groups,
        "exclude": list(exclude),
    }


@PROBES.register("int")
class Quantize(Probe):
    """``intB``: evaluate the model with its linear weights quantized to B bits."""

    family = "int"
    needs_arg = True

    @property
    def label(self) -> str:
        """``int4`` rather than ``int-4``."""
        return f"int{self.arg}"

    def check(self, ctx: ProbeContext) -> None:
        """A bit width the quantizer provides, on a backend that holds the weights."""
        super().check(ctx)
        if self.arg not in BITS:
            raise UnlearnBenchError(
                f"probe {self.label}: the quantizer (optimum-quanto) supports int8, int4 and "
                f"int2 weights, not {self.arg} bits"
            )
        if ctx.config.backend not in ("hf", "auto"):
            raise UnlearnBenchError(f"probe {self.label} needs the hf backend")
        from importlib.util import find_spec

        if find_spec("optimum.quanto") is None:
            raise UnlearnBenchError(
                f"probe {self.label} needs optimum-quanto: pip install 'unlearn-bench[quantize]'"
            )

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """Bits and excluded modules (the quantizer's identity is added once it has run)."""
        return {**super().describe(ctx), "bits": self.arg,
                "exclude": ctx.settings.quantize_exclude}  # fmt: skip

    def open_backend(self, ctx: ProbeContext, model_path: str) -> Backend:
        """An HF backend on ``model_path`` whose weights are quantized before any request."""
        from unlearn_bench.backends.cache import CachedBackend
        from unlearn_bench.backends.hf import HFBackend

        config = ctx.config
        backend = HFBackend(
            model_path, device=config.device, dtype="float32",
            batch_size=config.eval.batch_size, trust_remote_code=config.trust_remote_code,
        )  # fmt: skip
        assert self.arg is not None
        info = quantize_weights(backend.model, self.arg, ctx.settings.quantize_exclude)
        # The identity names the quantization, so the response cache never mixes the two.
        backend.note_transform(info)
        return CachedBackend(backend) if config.cache else backend  # type: ignore[return-value]
