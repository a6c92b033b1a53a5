"""Backends behind one protocol: HF transformers, vLLM, a deterministic fake, and a cache."""

from unlearn_bench.backends.base import (
    BACKENDS,
    Backend,
    GenerateRequest,
    Message,
    ScoreRequest,
    TokenScores,
)

__all__ = ["BACKENDS", "Backend", "GenerateRequest", "Message", "ScoreRequest", "TokenScores"]
