"""A deterministic fake backend for tests: no model, reproducible numbers from hashes.

Tokens are whitespace-separated words. A word's log-prob is a fixed function of the context and
the word, so the same request always scores the same; ``answers`` lets a test make the fake
"know" some continuations (high probability, greedy) and generate them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from unlearn_bench.backends.base import (
    BACKENDS,
    BackendStats,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
    apply_stops,
)


def _unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text``."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


@BACKENDS.register("fake")
class FakeBackend:
    """A deterministic stand-in for tests: known answers, otherwise scores from hashes."""

    capabilities = frozenset({"logprobs", "generate"})

    def __init__(
        self,
        model: str = "fake",
        *,
        answers: dict[str, str] | None = None,
        capabilities: frozenset[str] | None = None,
        **_: Any,
    ) -> None:
        self.model = model
        self.answers = dict(answers or {})  # question/prompt substring -> known answer
        if capabilities is not None:
            self.capabilities = capabilities
        self.stats = BackendStats()

    def identity(self) -> dict[str, Any]:
        """The fake model's name and a digest standing in for its weights."""
        return {"backend": "fake", "model": self.model, "weights_sha256": _digest(self.model)}

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """Messages rendered as ``<role>content</role>`` tags."""
        body = "".join(f"<{m.role}>{m.content}</{m.role}>" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")

    def _known(self, context: str) -> str | None:
        for key, answer in self.answers.items():
            if key in context:
                return answer
        return None

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Per-word scores: high for an answer the fake knows, hash-derived otherwise."""
        self.stats.forward_batches += 1 if requests else 0
        self.stats.scored_requests += len(requests)
        out = []
        for req in requests:
            known = self._known(req.context)
            words = req.continuation.split()
            if known is not None and req.continuation.strip() == known.strip():
                out.append(TokenScores([-0.05] * len(words), [True] * len(words)))
                continue
            lps = [
                -0.1 - 4.0 * _unit(f"{self.model}|{req.context}|{i}|{w}")
                for i, w in enumerate(words)
            ]
            out.append(TokenScores(lps, [lp > -1.0 for lp in lps]))
        return out

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """The known answer for a prompt, else a deterministic placeholder."""
        self.stats.forward_batches += 1 if requests else 0
        self.stats.generated_requests += len(requests)
        out = []
        for req in requests:
            known = self._known(req.prompt)
            text = known if known is not None else f"unknown {_digest(self.model + req.prompt)[:6]}"
            words = text.split()[: req.max_new_tokens]
            out.append(apply_stops(" ".join(words), req.stop))
        return out

    def close(self) -> None:
        """Nothing to free."""
        pass


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
