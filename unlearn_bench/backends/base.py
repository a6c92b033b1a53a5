"""The backend protocol: token log-probs of a continuation, generation, and an identity.

Requests carry text. Each backend tokenises the context and the continuation *separately* and
concatenates the ids, so no token straddles the question/answer boundary (SPEC pitfall 3), and
scores the continuation's tokens only.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class TokenScores:
    """Per continuation token: its log-prob and whether it was the argmax (greedy) choice."""

    logprobs: list[float]
    greedy: list[bool]

    def to_json(self) -> dict[str, Any]:
        return {"logprobs": self.logprobs, "greedy": self.greedy}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenScores:
        return cls(list(data["logprobs"]), [bool(g) for g in data["greedy"]])


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    max_new_tokens: int
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    add_special_tokens: bool = False


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@runtime_checkable
class Backend(Protocol):
    """What the evaluator needs of a model. ``capabilities`` names what it can do."""

    capabilities: frozenset[str]

    def identity(self) -> dict[str, Any]:
        """Name, version, model path and revision or weights hash, dtype, max length."""
        ...

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str: ...

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]: ...

    def generate(self, requests: list[GenerateRequest]) -> list[str]: ...

    def close(self) -> None: ...


@dataclass
class BackendStats:
    """Counts that let tests and benchmarks prove a cached re-score made no forward pass."""

    forward_batches: int = 0
    scored_requests: int = 0
    generated_requests: int = 0
    extra: dict[str, int] = field(default_factory=dict)


BACKENDS: Registry[Any] = Registry("backend")
BACKENDS.register_lazy("hf", "unlearn_bench.backends.hf:HFBackend")
BACKENDS.register_lazy("fake", "unlearn_bench.backends.fake:FakeBackend")


def require_capabilities(backend: Backend, needed: set[str] | frozenset[str], task: str) -> None:
    """Refuse a task whose requirements the backend lacks, never degrade silently."""
    missing = set(needed) - set(backend.capabilities)
    if missing:
        name = backend.identity().get("backend", type(backend).__name__)
        raise UnlearnBenchError(
            f"backend {name!r} lacks {sorted(missing)} required by task {task!r}"
        )


def apply_stops(text: str, stops: tuple[str, ...]) -> str:
    """Cut ``text`` at the first occurrence of any stop string."""
    cut = len(text)
    for stop in stops:
        pos = text.find(stop)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut]
