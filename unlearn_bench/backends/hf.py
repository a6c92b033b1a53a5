"""HF transformers backend: token log-probs, greedy/sampled generation, full-vocabulary stats.

Padding masks are built from sequence lengths, never from ``input_ids != pad_id``: SmolLM2 pads
with ``<|im_end|>``, which also ends every chat turn inside a prompt (SPEC pitfall 1).

Scoring a whole text (empty context, e.g. MUSE PrivLeak): a tokenizer that adds a BOS token
gives the first text token a context and every token is scored; one that adds none (SmolLM2)
leaves nothing to condition the first token on, so scoring starts at the second token.
Vision-language models (a config with ``vision_config``) go through ``hf_vision``.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from unlearn_bench import __version__
from unlearn_bench.backends import hf_generate, hf_gradbatch, hf_gradnorm, hf_scoring, hf_vision
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
from unlearn_bench.backends.hf_scoring import Item
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.models import ResolvedModel, resolve_model, tokenizer_hash, weights_hash


def pick_device(device: str = "auto") -> torch.device:
    """The torch device ``device`` names; "auto" is CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> None:
    """Refuse a CUDA device this machine does not have, before any work (not at first use)."""
    if not device.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        raise UnlearnBenchError(
            f"device {device!r} is not available: this machine has {count} CUDA device(s)"
        )


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype ``dtype`` names; "auto" is bf16 on CUDA, float32 on CPU."""
    if dtype == "auto":
        # bf16 where the hardware has it; float32 on CPU, where bf16 is slow and less exact.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise UnlearnBenchError(f"unknown dtype {dtype!r}: float32, bfloat16 or float16") from None


def pickle_only(load_path: str) -> bool:
    """Whether ``load_path`` is a local folder whose weights are only pickles (``*.bin``)."""
    from pathlib import Path

    folder = Path(load_path)
    return folder.is_dir() and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin"))


def check_pickle_weights(load_path: str) -> None:
    """Every ``pytorch_model*.bin`` must unpickle with ``weights_only`` into tensors only.

    ``torch.load(weights_only=True)`` refuses any class but tensors and plain containers, so a
    planted object (a ``__reduce__`` that runs code) fails here, before transformers sees the
    file; a state dict holding anything but name -> tensor is refused as well.
    """
    import pickle
    from pathlib import Path

    files = sorted(Path(load_path).glob("pytorch_model*.bin"))
    if not files:
        raise UnlearnBenchError(f"model folder {load_path} has no pytorch_model*.bin weights")
    for file in files:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnlearnBenchError(
                f"{file}: refused even with --allow-pickle (weights_only load failed: {first})"
            ) from None
        items = state.items() if isinstance(state, dict) else [("<top level>", state)]
        bad = [str(k) for k, v in items if not (isinstance(k, str) and torch.is_tensor(v))]
        if bad:
            raise UnlearnBenchError(
                f"{file}: refused even with --allow-pickle: not only tensors ({', '.join(bad[:3])})"
            )


def weights_kwargs(load_path: str, allow_pickle: bool) -> dict[str, Any]:
    """``from_pretrained`` keywords for a model's weights: safetensors, or checked pickles.

    A folder whose weights are only pickles (``pytorch_model*.bin``) is refused unless the run
    allows them (``allow_pickle`` / ``--allow-pickle``); then they are loaded with
    ``weights_only=True`` only, after :func:`check_pickle_weights`.
    """
    if not pickle_only(load_path):
        return {"use_safetensors": None, "weights_only": True}
    if not allow_pickle:
        raise UnlearnBenchError(
            f"model folder {load_path} holds only pickle weights (*.bin), which can run code on "
            "load; convert them to safetensors, or pass --allow-pickle (allow_pickle: true) to "
            "load them with torch.load(weights_only=True)"
        )
    check_pickle_weights(load_path)
    return {"use_safetensors": False, "weights_only": True}


def check_loading_info(source: str, info: dict[str, Any]) -> None:
    """Missing, unexpected or mismatched weights are an error: random tensors give gibberish."""
    problems = {
        k: sorted(str(x) for x in info.get(k) or [])
        for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        detail = "; ".join(f"{k.replace('_', ' ')}: {', '.join(v[:3])}" for k, v in bad.items())
        raise UnlearnBenchError(f"model {source!r} does not match its weights ({detail})")


def load_model_and_tokenizer(
    resolved: ResolvedModel,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool,
    allow_pickle: bool = False,
) -> tuple[Any, Any]:
    """The model in eval mode on ``device`` and its tokenizer (pad token set)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    weights = weights_kwargs(resolved.load_path, allow_pickle)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolved.load_path, revision=resolved.revision, trust_remote_code=trust_remote_code
        )
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            resolved.load_path,
            revision=resolved.revision,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **weights,
        )
    except Exception as exc:  # noqa: BLE001
        # Wrong-typed config.json, unknown architecture, truncated weights (each library raises
        # its own class): one line naming the model and the cause, never a traceback.
        text = str(exc).strip()
        first = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        raise UnlearnBenchError(f"cannot load model {resolved.source!r}: {first}") from None
    model, info = loaded  # output_loading_info=True: (model, report)
    check_loading_info(resolved.source, info)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer  # type: ignore[arg-type]


# How closely the activation-gradient norms must match the direct ones on a model's first
# gradient request (both are float32 gradients; only the order of summation differs).
GHOST_RTOL = 1e-5
# A batched gradient pass holds about batch_size rows of this many tokens.
GRAD_TOKENS_PER_ROW = 64


def _agree(direct: TokenScores, ghost: TokenScores) -> bool:
    """Whether both gradient norms of ``ghost`` match ``direct`` to GHOST_RTOL."""
    pairs = [
        (direct.grad_norm, ghost.grad_norm),
        (direct.grad_norm_mean_param, ghost.grad_norm_mean_param),
    ]
    return all(
        a is not None and b is not None and abs(a - b) <= GHOST_RTOL * abs(a) for a, b in pairs
    )


@BACKENDS.register("hf")
class HFBackend:
    """Implements every capability: logprobs, generate, vocab_stats and grad."""

    # "vision" needs a vision-language model; a text-only model refuses image requests.
    capabilities = frozenset({"logprobs", "generate", "vocab_stats", "grad", "vision"})

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        max_length: int = 2048,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        revision: str | None = None,
        model_object: Any = None,
        tokenizer_object: Any = None,
        progress: bool = True,
        share_prefix: bool = True,
        shrink_greedy: bool = True,
    ) -> None:
        self.resolved = resolve_model(model, revision)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.processor: Any = None  # set for vision-language models
        self.stats = BackendStats()
        with self.stats.timed("load"):
            self._load(model_object, tokenizer_object, trust_remote_code, allow_pickle)
        self.batch_size = batch_size
        self.max_length = min(
            max_length, getattr(self.model.config, "max_position_embeddings", max_length)
        )
        self.progress = progress
        # Score continuations that share a context on one KV cache (see hf_scoring); kept on
        # because bench/bench_tofu_eval.py measured it faster on CPU, and off where unsupported.
        self.share_prefix = share_prefix and hf_scoring.can_share_prefix(self.model)
        # Greedy batches drop finished rows (hf_generate); the text is plain generate's, so this
        # is not part of identity(). Off where the model's generation config could differ.
        self.shrink_greedy = shrink_greedy and hf_generate.can_shrink(self.model)
        self._identity: dict[str, Any] | None = None
        self._ghost: bool | None = None  # gradient norms without weight gradients: not yet checked
        # Tokens (rows x widest row) per batched gradient pass; measured in docs/performance.md.
        self.grad_batch_tokens = batch_size * GRAD_TOKENS_PER_ROW

    def _load(
        self, model_object: Any, tokenizer_object: Any, trust_remote_code: bool, allow_pickle: bool
    ) -> None:
        """The model and tokenizer (or processor): given objects, a vision model or a causal LM."""
        if model_object is not None:
            self.model, self.tokenizer = model_object.eval(), tokenizer_object
        elif hf_vision.is_vision_language(
            self.resolved.load_path, self.resolved.revision, trust_remote_code
        ):
            self.model, self.processor = hf_vision.load_vision_model(
                self.resolved.load_path,
                self.resolved.revision,
                self.device,
                self.dtype,
                trust_remote_code,
            )
            self.tokenizer = self.processor.tokenizer
        else:
            self.model, self.tokenizer = load_model_and_tokenizer(
                self.resolved, self.device, self.dtype, trust_remote_code, allow_pickle
            )

    def identity(self) -> dict[str, Any]:
        """Backend, model source, weights hash, dtype and library versions (computed once)."""
        if self._identity is None:
            from pathlib import Path

            import transformers

            local = Path(self.resolved.load_path)
            weights = weights_hash(local) if local.is_dir() else None
            self._identity = {
                "backend": "hf",
                "backend_version": f"transformers {transformers.__version__}",
                "harness_version": __version__,
                "model": self.resolved.source,
                "model_path": self.resolved.load_path,
                "revision": self.resolved.revision,
                "weights_sha256": weights,
                # The tokenizer and chat template shape every prompt: part of the answer.
                "tokenizer_sha256": tokenizer_hash(self.tokenizer),
                "dtype": str(self.dtype).replace("torch.", ""),
                "max_length": self.max_length,
                "note": self.resolved.note,
            }
            if pickle_only(self.resolved.load_path):  # only with allow_pickle; said, not hidden
                self._identity["weights_format"] = "pickle via torch.load(weights_only=True)"
        return self._identity

    def note_transform(self, info: dict[str, Any]) -> None:
        """Record a change made to the loaded weights (a probe's quantization) in identity()."""
        self._identity = {**self.identity(), "transform": info}

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to ``messages`` (images via its processor)."""
        if self.processor is not None:
            return hf_vision.render_chat(self.processor, messages, add_generation_prompt)
        if any(m.images for m in messages):
            raise UnlearnBenchError(
                f"model {self.resolved.source!r} is text-only but the prompt has images; "
                "use a vision-language model"
            )
        return render_chat(self.tokenizer, messages, add_generation_prompt, self.resolved.source)

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids

    def truncate_tokens(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text's first ``max_tokens`` content tokens (no special tokens), decoded."""
        return [
            self.tokenizer.decode(self._encode(t, False)[:max_tokens], skip_special_tokens=True)
            for t in texts
        ]

    # --- log-probs -------------------------------------------------------------------------
    def _encode_request(self, req: ScoreRequest) -> tuple[list[int], list[int]]:
        ctx = self._encode(req.context, req.add_special_tokens)
        cont = self._encode(req.continuation, False)
        if not ctx:
            # No BOS and no context: the first token has nothing to be predicted from.
            ctx, cont = cont[:1], cont[1:]
        if not cont:
            raise UnlearnBenchError(f"empty continuation to score after {req.context[-40:]!r}")
        if len(ctx) + len(cont) > self.max_length:
            raise UnlearnBenchError(
                f"request of {len(ctx) + len(cont)} tokens exceeds max length {self.max_length}"
            )
        return ctx, cont

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Token scores per request: gradient requests one by one, the rest batched by length.

        Requests that share a context go through the shared-prefix path when it is on.
        """
        encoded = [self._encode_request(req) for req in requests]
        results: list[TokenScores | None] = [None] * len(requests)
        rest = [i for i, req in enumerate(requests) if not req.grad_norm]
        by_context: dict[tuple[int, ...], list[int]] = {}
        for i in rest if self.share_prefix else []:
            by_context.setdefault(tuple(encoded[i][0]), []).append(i)
        shared = [members for members in by_context.values() if len(members) > 1]
        in_shared = {i for members in shared for i in members}
        with self.stats.timed("logprobs"):
            self._score_plain([i for i in rest if i not in in_shared], encoded, requests, results)
            self._score_shared(shared, encoded, requests, results)
        with_grad = [i for i, req in enumerate(requests) if req.grad_norm]
        # Several items per forward and backward pass once the batched path has matched the
        # direct one (hf_gradbatch); minutes on a full suite, so it has its own progress bar.
        batches = hf_gradbatch.plan_grad_batches(
            [encoded[i] for i in with_grad], self.grad_batch_tokens, self.batch_size
        )
        bar = tqdm(
            total=len(with_grad),
            desc="gradient norms",
            disable=not self.progress or len(batches) < 4,
        )
        with self.stats.timed("grad_norms"), bar:
            for batch in batches:
                rows = [with_grad[k] for k in batch]
                items = [encoded[i] for i in rows]
                flags = [requests[i].vocab_stats for i in rows]
                for i, scores in zip(rows, self._score_with_grad(items, flags), strict=True):
                    results[i] = scores
                bar.update(len(rows))
        self.stats.scored_requests += len(requests)
        return [r for r in results if r is not None]

    def _score_with_grad(self, items: list[Item], flags: list[bool]) -> list[TokenScores]:
        """Gradient norms of one batch, batched (``hf_gradbatch``) once it matched the direct way.

        The model's first gradient batch runs the batched path and, for its longest and its
        shortest item (the one with the most padding), the direct one; the batched path is used
        from then on only if every norm agrees to GHOST_RTOL. The run record counts the checks,
        any rejection and the requests each path answered (``backend_stats.extra``).
        """
        if self._ghost is None:
            return self._check_batched(items, flags)
        if self._ghost:
            batched = hf_gradbatch.score_batch_with_grad(
                self.model, items, flags, self._pad_id(), self.device
            )
            if batched is not None:
                self.stats.forward_batches += 1
                self._count("grad_norms_ghost", len(items))
                self._count("grad_norm_batches")
                return batched
            self._ghost = False  # a module ran twice on this input: direct from now on
            self._count("grad_norm_ghost_unusable")
        return [self._direct(item, flag) for item, flag in zip(items, flags, strict=True)]

    def _check_batched(self, items: list[Item], flags: list[bool]) -> list[TokenScores]:
        """The first gradient batch: the batched path against the direct one."""
        checked = sorted({0, len(items) - 1})
        direct = {k: self._direct(items[k], flags[k]) for k in checked}
        self._ghost = False
        batched = None
        if hf_gradnorm.supports_ghost(self.model):
            batched = hf_gradbatch.score_batch_with_grad(
                self.model, items, flags, self._pad_id(), self.device
            )
            self.stats.forward_batches += 1
            self._ghost = batched is not None and all(
                _agree(direct[k], batched[k]) for k in checked
            )
            self._count("grad_norm_ghost_checked", len(checked))
            if not self._ghost:
                self._count("grad_norm_ghost_rejected")
        if not self._ghost or batched is None:
            rest = {
                k: self._direct(items[k], flags[k]) for k in range(len(items)) if k not in direct
            }
            return [direct[k] if k in direct else rest[k] for k in range(len(items))]
        self._count("grad_norms_ghost", len(items) - len(checked))
        return [direct[k] if k in direct else batched[k] for k in range(len(items))]

    def _direct(self, item: Item, flag: bool) -> TokenScores:
        """One item, every weight gradient formed: the reference path."""
        self.stats.forward_batches += 1
        self._count("grad_norms_direct")
        return hf_scoring.score_with_grad(self.model, item, flag, self.device)

    def _pad_id(self) -> int:
        """The id that fills padding (masked out, so its value changes no number)."""
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def _count(self, key: str, n: int = 1) -> None:
        self.stats.extra[key] = self.stats.extra.get(key, 0) + n

    def _score_plain(
        self,
        indices: list[int],
        encoded: list[tuple[list[int], list[int]]],
        requests: list[ScoreRequest],
        results: list[TokenScores | None],
    ) -> None:
        # Longest first: padding waste is smallest when similar lengths share a batch.
        order = sorted(indices, key=lambda i: -sum(map(len, encoded[i])))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc="log-probs", disable=not self.progress or len(batches) < 4):
            scores = hf_scoring.score_plain(
                self.model,
                [encoded[i] for i in batch],
                [requests[i].vocab_stats for i in batch],
                self.tokenizer.pad_token_id,
                self.device,
            )
            self.stats.forward_batches += 1
            for i, item in zip(batch, scores, strict=True):
                results[i] = item

    def _score_shared(
        self,
        groups: list[list[int]],
        encoded: list[tuple[list[int], list[int]]],
        requests: list[ScoreRequest],
        results: list[TokenScores | None],
    ) -> None:
        token_ids = [(encoded[m[0]][0], [encoded[i][1] for i in m]) for m in groups]
        # A batch holds about as many continuation tokens as batch_size rows of 64 tokens.
        batches = hf_scoring.plan_shared_batches(token_ids, self.batch_size * 64)
        for batch in tqdm(
            batches, desc="log-probs (shared prefix)", disable=not self.progress or len(batches) < 4
        ):
            scored = hf_scoring.score_shared(
                self.model,
                [
                    (token_ids[g][0], [(encoded[i][1], requests[i].vocab_stats) for i in groups[g]])
                    for g in batch
                ],
                self.tokenizer.pad_token_id,
                self.device,
            )
            self.stats.forward_batches += 2  # the prompts, then the continuations
            extra = self.stats.extra
            extra["shared_prefix_groups"] = extra.get("shared_prefix_groups", 0) + len(batch)
            for g, group_scores in zip(batch, scored, strict=True):
                for i, item in zip(groups[g], group_scores, strict=True):
                    results[i] = item

    # --- generation ------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """Greedy or sampled completions, batched by length and sampling settings."""
        with self.stats.timed("generate"):
            return self._generate(requests)

    def _generate(self, requests: list[GenerateRequest]) -> list[str]:
        results: list[str] = [""] * len(requests)
        encoded = [self._encode(r.prompt, r.add_special_tokens) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(encoded[i]))
        groups: list[list[int]] = []
        for i in order:
            # A batch shares one set of generation parameters.
            key = self._gen_key(requests[i])
            if (
                groups
                and len(groups[-1]) < self.batch_size
                and self._gen_key(requests[groups[-1][0]]) == key
            ):
                groups[-1].append(i)
            else:
                groups.append([i])
        for group in tqdm(groups, desc="generate", disable=not self.progress or len(groups) < 2):
            if requests[group[0]].images:
                texts = self._generate_images([requests[i] for i in group])
            else:
                texts = self._generate_batch([encoded[i] for i in group], requests[group[0]])
            for i, text in zip(group, texts, strict=True):
                results[i] = apply_stops(text, requests[i].stop)
        self.stats.generated_requests += len(requests)
        return results

    @staticmethod
    def _gen_key(req: GenerateRequest) -> tuple[Any, ...]:
        return (req.max_new_tokens, req.temperature, req.top_p, req.seed, bool(req.images))

    def _generate_images(self, requests: list[GenerateRequest]) -> list[str]:
        if self.processor is None:
            raise UnlearnBenchError(
                f"model {self.resolved.source!r} is text-only but requests carry images; "
                "use a vision-language model"
            )
        self.stats.forward_batches += 1
        return hf_vision.generate_batch(self.model, self.processor, requests, self.device)

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], params: GenerateRequest) -> list[str]:
        width = max(len(p) for p in prompts)
        if width + params.max_new_tokens > self.max_length:
            raise UnlearnBenchError(
                f"prompt of {width} tokens + {params.max_new_tokens} new tokens exceeds "
                f"max length {self.max_length}"
            )
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        self.stats.forward_batches += 1
        if params.temperature <= 0 and self.shrink_greedy and eos is not None:
            self._count("generate_batches_shrinking")
            new_tokens = hf_generate.greedy_shrinking(
                self.model,
                prompts,
                params.max_new_tokens,
                pad,
                [eos],
                self.device,
                self.stats.extra,
            )
            return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        # Left padding so every row's next token is at the same position.
        ids, mask = hf_scoring.left_padded(prompts, pad)
        sampling = params.temperature > 0
        if sampling:
            torch.manual_seed(params.seed)
        output = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            top_k=None,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        new_tokens = output[:, width:]
        self._count("generate_batches_plain")
        # Every row takes part in every forward pass of plain generate (one per new token).
        self.stats.extra["generate_forward_rows"] = (
            self.stats.extra.get("generate_forward_rows", 0) + new_tokens.numel()
        )
        self.stats.extra["generate_forward_steps"] = (
            self.stats.extra.get("generate_forward_steps", 0) + new_tokens.shape[1]
        )
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def close(self) -> None:
        """Drop the model."""
        self.model = None
