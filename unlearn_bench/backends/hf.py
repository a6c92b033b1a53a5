"""HF transformers backend: token log-probs, greedy/sampled generation, full-vocabulary stats.

Padding masks are built from sequence lengths, never from ``input_ids != pad_id``: SmolLM2 pads
with ``<|im_end|>``, which also ends every chat turn inside a prompt (SPEC pitfall 1).
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from unlearn_bench import __version__
from unlearn_bench.backends.base import (
    BackendStats,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
    apply_stops,
)
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.models import ResolvedModel, resolve_model, weights_hash


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 where the hardware has it; float32 on CPU, where bf16 is slow and less exact.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise UnlearnBenchError(f"unknown dtype {dtype!r}: float32, bfloat16 or float16") from None


def load_model_and_tokenizer(
    resolved: ResolvedModel, device: torch.device, dtype: torch.dtype, trust_remote_code: bool
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolved.load_path, revision=resolved.revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            resolved.load_path,
            revision=resolved.revision,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None,
        )
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(f"cannot load model {resolved.source!r}: {first}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


class HFBackend:
    """Implements every capability: logprobs, generate, vocab_stats and grad."""

    capabilities = frozenset({"logprobs", "generate", "vocab_stats", "grad"})

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        max_length: int = 2048,
        trust_remote_code: bool = False,
        revision: str | None = None,
        model_object: Any = None,
        tokenizer_object: Any = None,
        progress: bool = True,
    ) -> None:
        self.resolved = resolve_model(model, revision)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        if model_object is not None:
            self.model, self.tokenizer = model_object.eval(), tokenizer_object
        else:
            self.model, self.tokenizer = load_model_and_tokenizer(
                self.resolved, self.device, self.dtype, trust_remote_code
            )
        self.batch_size = batch_size
        self.max_length = min(
            max_length, getattr(self.model.config, "max_position_embeddings", max_length)
        )
        self.progress = progress
        self.stats = BackendStats()
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
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
                "dtype": str(self.dtype).replace("torch.", ""),
                "max_length": self.max_length,
                "note": self.resolved.note,
            }
        return self._identity

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise UnlearnBenchError(
                f"model {self.resolved.source!r} has no chat template; use prompt style 'tags'"
            )
        return self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids

    # --- log-probs -------------------------------------------------------------------------
    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        encoded = []
        for req in requests:
            ctx = self._encode(req.context, req.add_special_tokens)
            cont = self._encode(req.continuation, False)
            if not cont:
                raise UnlearnBenchError(f"empty continuation to score after {req.context[-40:]!r}")
            if len(ctx) + len(cont) > self.max_length:
                raise UnlearnBenchError(
                    f"request of {len(ctx) + len(cont)} tokens exceeds max length {self.max_length}"
                )
            encoded.append((ctx, cont))
        results: list[TokenScores | None] = [None] * len(requests)
        # Longest first: padding waste is smallest when similar lengths share a batch.
        order = sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i])))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc="log-probs", disable=not self.progress or len(batches) < 4):
            for i, scores in zip(
                batch, self._score_batch([encoded[i] for i in batch]), strict=True
            ):
                results[i] = scores
        self.stats.scored_requests += len(requests)
        return [r for r in results if r is not None]

    @torch.no_grad()
    def _score_batch(self, items: list[tuple[list[int], list[int]]]) -> list[TokenScores]:
        lengths = [len(c) + len(a) for c, a in items]
        width = max(lengths)
        ids = torch.full((len(items), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (ctx, cont) in enumerate(items):
            ids[row, : lengths[row]] = torch.tensor(ctx + cont)
            mask[row, : lengths[row]] = 1
        logits = self.model(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
        ).logits
        self.stats.forward_batches += 1
        out = []
        for row, (ctx, cont) in enumerate(items):
            # Logits at position t predict token t+1: the continuation starts at len(ctx).
            start = len(ctx)
            positions = torch.arange(start - 1, start - 1 + len(cont), device=logits.device)
            row_logits = logits[row, positions].float()
            logprobs = torch.log_softmax(row_logits, dim=-1)
            target = torch.tensor(cont, device=logits.device)
            picked = logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            greedy = row_logits.argmax(dim=-1) == target
            out.append(TokenScores(picked.tolist(), greedy.tolist()))
        return out

    # --- generation ------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[str]:
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
            texts = self._generate_batch([encoded[i] for i in group], requests[group[0]])
            for i, text in zip(group, texts, strict=True):
                results[i] = apply_stops(text, requests[i].stop)
        self.stats.generated_requests += len(requests)
        return results

    @staticmethod
    def _gen_key(req: GenerateRequest) -> tuple[Any, ...]:
        return (req.max_new_tokens, req.temperature, req.top_p, req.seed)

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], params: GenerateRequest) -> list[str]:
        width = max(len(p) for p in prompts)
        if width + params.max_new_tokens > self.max_length:
            raise UnlearnBenchError(
                f"prompt of {width} tokens + {params.max_new_tokens} new tokens exceeds "
                f"max length {self.max_length}"
            )
        pad = self.tokenizer.pad_token_id
        # Left padding so every row's next token is at the same position.
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
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
            eos_token_id=self.tokenizer.eos_token_id,
        )
        self.stats.forward_batches += 1
        new_tokens = output[:, width:]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def close(self) -> None:
        self.model = None
