"""Prefix ("jailbreak") probe: a declared assistant prefix written before every answer.

The prefix (task file ``probes.prefix``, default ``Sure, here is the answer:``) is appended to
every context the backend sees, whatever the prompt style: generation continues after it, and
scored answers follow it after a space, as running text would.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from unlearn_bench.probes.base import PROBES, Probe, ProbeContext

if TYPE_CHECKING:
    from unlearn_bench.backends.base import Backend, GenerateRequest, ScoreRequest, TokenScores


class PrefixedBackend:
    """A backend whose every context ends with ``prefix`` (the rest delegated unchanged)."""

    def __init__(self, inner: Backend, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        """Score each continuation after context + prefix (continuation led by a space)."""
        moved = [
            dataclasses.replace(
                r,
                context=r.context + self.prefix,
                continuation=r.continuation
                if r.continuation[:1].isspace()
                else " " + r.continuation,
            )
            for r in requests
        ]
        return self.inner.logprobs(moved)

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        """Generate after prompt + prefix."""
        moved = [dataclasses.replace(r, prompt=r.prompt + self.prefix) for r in requests]
        return self.inner.generate(moved)


@PROBES.register("prefix")
class Prefix(Probe):
    """Evaluate with the task's assistant prefix before every answer."""

    family = "prefix"

    def describe(self, ctx: ProbeContext) -> dict[str, Any]:
        """Record the prefix text."""
        return {**super().describe(ctx), "prefix": ctx.spec.probes.prefix}

    def open_backend(self, ctx: ProbeContext, model_path: str) -> Backend:
        """The ordinary backend, every context extended by the prefix."""
        return PrefixedBackend(super().open_backend(ctx, model_path), ctx.spec.probes.prefix)  # type: ignore[return-value]
