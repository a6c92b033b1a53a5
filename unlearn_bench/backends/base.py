"""The backend protocol: token log-probs of a continuation, generation, and an identity.

Requests carry text. Each backend tokenises the context and the continuation *separately* and
concatenates the ids, so no token straddles the question/answer boundary (SPEC pitfall 3), and
scores the continuation's tokens only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.registry import Registry


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation`` given ``context`` (context already prompt-formatted)."""

    context: str
    continuation: str
    add_special_tokens: bool = False  # add BOS etc. to the context (tag prompts, not chat ones)
    # Extras computed in the same forward pass; a backend lacking the capability is refused.
    vocab_stats: bool = False  # capability "vocab_stats": mean/std of log p per position
    grad_norm: bool = False  # capability "grad": norm of the gradient of the mean NLL


@dataclass(frozen=True)
class TokenScores:
    """Per continuation token: its log-prob and whether it was the argmax (greedy) choice.

    With ``ScoreRequest.vocab_stats``: per position t, the mean ``sum_v p_v log p_v`` and the
    standard deviation of log p under the model's full next-token distribution (Min-K%++,
    Zhang et al. 2024). With ``ScoreRequest.grad_norm``: the L2 norm of the gradient of the mean
    continuation NLL over all trainable parameters, and the mean of per-tensor L2 norms (the
    variant open-unlearning's and mimir's GradNorm attack computes).
    """

    logprobs: list[float]
    greedy: list[bool]
    vocab_means: list[float] | None = None
    vocab_stds: list[float] | None = None
    grad_norm: float | None = None
    grad_norm_mean_param: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The scores as a JSON-able dict; extras only when present."""
        out: dict[str, Any] = {"logprobs": self.logprobs, "greedy": self.greedy}
        # Extras only when present, so plain entries keep their original shape.
        for key in ("vocab_means", "vocab_stds", "grad_norm", "grad_norm_mean_param"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenScores:
        """Scores read back from ``to_json``'s dict."""
        return cls(
            list(data["logprobs"]),
            [bool(g) for g in data["greedy"]],
            data.get("vocab_means"),
            data.get("vocab_stds"),
            data.get("grad_norm"),
            data.get("grad_norm_mean_param"),
        )


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: a formatted prompt and its sampling settings."""

    prompt: str
    max_new_tokens: int
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    add_special_tokens: bool = False
    # Base64-encoded image files (PNG/JPEG ...) for a vision-language model, in the order the
    # prompt's image placeholders appear. Text, not bytes, so cache keys stay plain JSON.
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    """One chat message: role, text and the number of images before it."""

    role: str
    content: str
    images: int = 0  # images attached before the text (rendered as the model's placeholders)


@runtime_checkable
class Backend(Protocol):
    """What the evaluator needs of a model. ``capabilities`` names what it can do."""

    capabilities: frozenset[str]

    def identity(self) -> dict[str, Any]:
        """Name, version, model path and revision or weights hash, dtype, max length."""
        ...

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to ``messages``."""

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Per-token log-probs (and greedy flags) of each continuation given its context."""

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """The completion of each request's prompt."""

    def close(self) -> None:
        """Free the model."""


@dataclass
class BackendStats:
    """Counts that let tests and benchmarks prove a cached re-score made no forward pass."""

    forward_batches: int = 0
    scored_requests: int = 0
    generated_requests: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    # Wall seconds per phase (load, engine_start, logprobs, grad_norms, generate): the run
    # record's evaluation breakdown, so a benchmark reads where the time went from the record.
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``seconds[phase]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed


BACKENDS: Registry[Any] = Registry("backend", indexed=True)


def require_capabilities(backend: Backend, needed: set[str] | frozenset[str], task: str) -> None:
    """Refuse a task whose requirements the backend lacks, never degrade silently."""
    missing = set(needed) - set(backend.capabilities)
    if missing:
        name = backend.identity().get("backend", type(backend).__name__)
        raise UnlearnBenchError(
            f"backend {name!r} lacks {sorted(missing)} required by task {task!r}"
        )


def truncate_to_tokens(backend: Any, texts: list[str], max_tokens: int) -> list[str]:
    """Each text cut to its first ``max_tokens`` tokens of the backend model's tokenizer.

    An optional backend method, ``truncate_tokens(texts, max_tokens)``; wrappers (the response
    cache) are looked through via their ``inner`` backend. A backend without it is refused:
    counting in some other unit would silently change the metric (MUSE VerbMem compares with
    the first 128 *model* tokens of the true continuation).
    """
    target = backend
    while target is not None and not hasattr(target, "truncate_tokens"):
        target = getattr(target, "inner", None)
    if target is None:
        name = backend.identity().get("backend", type(backend).__name__)
        raise UnlearnBenchError(
            f"backend {name!r} cannot cut text to model tokens (truncate_tokens), which "
            "reference prefixes (MUSE VerbMem) need"
        )
    return list(target.truncate_tokens(texts, max_tokens))


def apply_stops(text: str, stops: tuple[str, ...]) -> str:
    """Cut ``text`` at the first occurrence of any stop string."""
    cut = len(text)
    for stop in stops:
        pos = text.find(stop)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut]


def render_chat(
    tokenizer: Any, messages: list[Message], add_generation_prompt: bool, source: str
) -> str:
    """Render text-only messages through a tokenizer's chat template, or fail clearly."""
    from jinja2 import TemplateError  # transformers' own dependency; light

    if not getattr(tokenizer, "chat_template", None):
        raise UnlearnBenchError(f"model {source!r} has no chat template; use prompt style 'tags'")
    try:
        return tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )
    except TemplateError as exc:  # a damaged chat_template.jinja / tokenizer_config.json
        raise UnlearnBenchError(f"model {source!r}: its chat template is broken: {exc}") from None
