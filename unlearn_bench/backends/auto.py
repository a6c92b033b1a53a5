"""Backend ``auto``: vLLM where it can serve a request, HF transformers for the rest.

Routing is by measured speed, per request kind, and fixed, so the response cache never holds one
request's answer from two engines. Generation goes to vLLM when it is importable: on the whole
TOFU forget01 suite (2 CPU cores, SmolLM2-135M) vLLM generated its 657 answers in 410 s where HF
took 1,428 s, with identical text. Log-probs go to HF on a CPU: there vLLM's prompt log-probs
scored the suite's 3,988 continuations in 777 s where HF's shared-prefix batches took 460 s
(with the vocabulary statistics too). On a GPU plain log-probs go to vLLM (not measured here:
no GPU was at hand). Requests for full-vocabulary statistics or gradients, and anything with
images, always go to HF (loaded only when first needed). Without vLLM every request goes to HF.
The identity names both engines and this rule; the capabilities are HF's, because HF backs
every request vLLM cannot serve.

``auto`` is the default backend. Whether vLLM takes part is decided when the backend is built,
before its identity is read, so a response is never filed under an engine that did not compute
it: HF alone when vLLM is not installed, when ``UNLEARN_BENCH_NO_VLLM=1`` is set, when the model
folder holds only pickle weights (read by HF's checked loader only) or when vLLM has no
implementation of the model's architecture. The engine starts when the backend is built; if it
fails, HF computes everything and the failure is printed. ``routing`` says which rule applied
and the run header records it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from unlearn_bench.backends.base import (
    BACKENDS,
    BackendStats,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
)
from unlearn_bench.backends.vllm_engine import vllm_available
from unlearn_bench.errors import UnlearnBenchError

NO_VLLM_ENV = "UNLEARN_BENCH_NO_VLLM"
ROUTING_CPU = "generate: vllm; logprobs and images: hf"
ROUTING_GPU = (
    "generate and plain logprobs: vllm; logprobs with vocab_stats or grad_norm, and images: hf"
)


@BACKENDS.register("auto")
class AutoBackend:
    """vLLM where it is fastest (generation), HF for everything else or without vLLM."""

    capabilities = frozenset({"logprobs", "generate", "vocab_stats", "grad", "vision"})

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        trust_remote_code: bool = False,
        revision: str | None = None,
        vllm: Any = None,
        progress: bool = True,
        allow_pickle: bool = False,
    ) -> None:
        self._hf_kwargs: dict[str, Any] = {
            "device": device, "dtype": dtype, "batch_size": batch_size,
            "trust_remote_code": trust_remote_code, "revision": revision, "progress": progress,
            "allow_pickle": allow_pickle,
        }  # fmt: skip
        self.model = model
        self.fast: Any = None
        self._hf: Any = None
        hf_only = why_hf_only(model, revision, trust_remote_code)
        if hf_only is None:
            from unlearn_bench.backends.vllm import VLLMBackend

            self.fast = VLLMBackend(
                model, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                revision=revision, vllm=vllm, progress=progress,
            )  # fmt: skip
            hf_only = self._start_fast()
        on_cpu = self._on_cpu
        self.routing = f"all: hf ({hf_only})" if hf_only else ROUTING_CPU if on_cpu else ROUTING_GPU
        self._identity: dict[str, Any] | None = None

    @property
    def hf(self) -> Any:
        """The HF backend, loaded on first use."""
        if self._hf is None:
            from unlearn_bench.backends.hf import HFBackend

            self._hf = HFBackend(self.model, **self._hf_kwargs)
        return self._hf

    def _start_fast(self) -> str | None:
        """Start the vLLM engine now, before any identity is read; on failure, HF alone.

        Deciding here keeps the cache honest: every answer is filed under the engines that
        computed it. The failure is printed and recorded in ``routing``, never hidden.
        """
        try:
            self.fast.warm_up()  # one token: some failures show only on the first forward pass
        except UnlearnBenchError as exc:
            self.fast.close()
            self.fast = None
            print(f"backend auto: {exc}; HF computes everything instead", file=sys.stderr)
            return f"vLLM engine failed to start: {exc}"
        return None

    def sole_hf(self) -> Any:
        """The HF backend when it answers every request (no vLLM), else None."""
        return self.hf if self.fast is None else None

    @property
    def stats(self) -> BackendStats:
        """Counts summed over both engines (forward passes, requests, generated tokens)."""
        total = BackendStats()
        for part in (self.fast, self._hf):
            if part is None:
                continue
            total.forward_batches += part.stats.forward_batches
            total.scored_requests += part.stats.scored_requests
            total.generated_requests += part.stats.generated_requests
            for key, value in part.stats.extra.items():
                total.extra[key] = total.extra.get(key, 0) + value
            for phase, seconds in part.stats.seconds.items():
                total.seconds[phase] = total.seconds.get(phase, 0.0) + seconds
        return total

    def identity(self) -> dict[str, Any]:
        """One identity for the pair: the HF one alone, or both engines' when vLLM is used."""
        if self._identity is None:
            if self.fast is None:
                # HF alone computes everything: the same answers as backend "hf", same key.
                self._identity = self.hf.identity()
            else:
                import transformers

                from unlearn_bench.backends.hf import pick_device, pick_dtype

                device = pick_device(self._hf_kwargs["device"])
                hf_dtype = pick_dtype(self._hf_kwargs["dtype"], device)
                self._identity = {
                    **self.fast.identity(),
                    "backend": "auto",
                    "routing": self.routing,
                    "hf_backend_version": f"transformers {transformers.__version__}",
                    "hf_dtype": str(hf_dtype).replace("torch.", ""),
                }
        return self._identity

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The chat template rendered by vLLM's tokenizer, or HF's for images."""
        if self.fast is None or any(getattr(m, "images", 0) for m in messages):
            return self.hf.chat_prompt(messages, add_generation_prompt)
        return self.fast.chat_prompt(messages, add_generation_prompt)

    def truncate_tokens(self, texts: list[str], max_tokens: int) -> list[str]:
        """Texts cut to ``max_tokens`` tokens of the model's tokenizer."""
        target = self.fast if self.fast is not None else self.hf
        return list(target.truncate_tokens(texts, max_tokens))

    @property
    def _on_cpu(self) -> bool:
        from unlearn_bench.backends.hf import pick_device

        return pick_device(self._hf_kwargs["device"]).type == "cpu"

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Token scores, each request routed to the engine that answers it best."""
        on_cpu = self._on_cpu

        def to_hf(r: ScoreRequest) -> bool:
            if on_cpu:
                return True
            return bool(getattr(r, "vocab_stats", False) or getattr(r, "grad_norm", False))

        return self._split(requests, to_hf, "logprobs")

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """Generations: text-only requests to vLLM, requests with images to HF."""
        return self._split(requests, lambda r: bool(getattr(r, "images", ())), "generate")

    def _split(self, requests: list[Any], to_hf: Any, kind: str) -> list[Any]:
        """Send each request to its engine in one batched call per engine; keep the order."""
        hf_idx = [i for i, r in enumerate(requests) if self.fast is None or to_hf(r)]
        fast_idx = sorted(set(range(len(requests))) - set(hf_idx))
        results: list[Any] = [None] * len(requests)
        for engine, idx in ((self.fast, fast_idx), (None, hf_idx)):
            if not idx:
                continue
            backend = engine if engine is not None else self.hf
            answers = getattr(backend, kind)([requests[i] for i in idx])
            for i, answer in zip(idx, answers, strict=True):
                results[i] = answer
        return results

    def close(self) -> None:
        """Close whichever engines were started."""
        for part in (self.fast, self._hf):
            if part is not None:
                part.close()

    def __enter__(self) -> AutoBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def why_hf_only(model: str, revision: str | None, trust_remote_code: bool) -> str | None:
    """Why ``auto`` must leave vLLM out for ``model``, or None when vLLM takes part."""
    if os.environ.get(NO_VLLM_ENV) == "1":
        return f"{NO_VLLM_ENV}=1"
    if not vllm_available():
        return "vLLM is not installed"
    from unlearn_bench.backends.hf import pickle_only
    from unlearn_bench.models import resolve_model

    resolved = resolve_model(model, revision)
    if pickle_only(resolved.load_path):
        return "pickle-only weights: HF's checked loader reads them"
    adapter = Path(resolved.load_path) / "adapter_config.json"
    if adapter.is_file():  # a LoRA adapter: the architecture is its base model's
        base = json.loads(adapter.read_text()).get("base_model_name_or_path") or ""
        resolved = resolve_model(base, revision)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            resolved.load_path, revision=resolved.revision, trust_remote_code=trust_remote_code
        )
    except OSError as exc:  # the same one line as the HF and vLLM loaders give
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(f"cannot load model {model!r}: {first}") from None
    archs = config.architectures or []
    from vllm.model_executor.models import ModelRegistry

    unsupported = sorted(set(archs) - set(ModelRegistry.get_supported_archs()))
    if unsupported or not archs:
        return f"vLLM has no implementation of {', '.join(unsupported) or 'this model'}"
    return None
