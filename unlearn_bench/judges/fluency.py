"""Fluency: token log-probs of each output under a chosen reference model (Yao et al.).

The output is scored as the continuation of the same prompt the evaluated model saw, rendered
with the task's prompt format for the reference model; the metric ``fluency_ppl`` turns the
stored log-probs into perplexity. Outputs that are not meaningful (near-empty, or mostly
repeats of one character, token or word: :func:`unlearn_bench.metrics.llmu.not_meaningful`) are
not scored: their fluency is "NM". Scores go through the response cache, keyed by the
reference model's weights.
"""

from __future__ import annotations

from typing import Any

from unlearn_bench.judges import SCORERS, ScoreItem, Scorer, ScorerContext


@SCORERS.register("reference_ppl")
class ReferencePerplexity(Scorer):
    """Fluency: log-probs of each output under a fixed reference model."""

    kind = "reference_ppl"

    def __init__(
        self, context: ScorerContext, model: str, backend: str = "hf",
        backend_args: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(context)
        from unlearn_bench.backends.base import BACKENDS
        from unlearn_bench.backends.cache import CachedBackend

        self.backend = CachedBackend(BACKENDS.get(backend)(model, **(backend_args or {})))

    def identity(self) -> dict[str, Any]:
        """The reference model, its weights hash and backend."""
        ident = self.backend.identity()
        return {
            "judge": "reference-model perplexity of the output given the prompt",
            "model": ident.get("model"),
            "weights_sha256": ident.get("weights_sha256"),
            "backend": ident.get("backend"),
        }

    def score(self, items: list[ScoreItem]) -> list[dict[str, Any]]:
        """Token log-probs of each meaningful output given its prompt."""
        from unlearn_bench.backends.base import ScoreRequest
        from unlearn_bench.metrics.llmu import not_meaningful
        from unlearn_bench.prompts import format_prompt

        requests, positions = [], []
        for i, item in enumerate(items):
            if not_meaningful(item.generation):
                continue
            prompt = format_prompt(
                self.context.spec.prompt, item.question, self.backend.chat_prompt
            )
            requests.append(
                ScoreRequest(
                    prompt.context,
                    prompt.answer_prefix + item.generation,
                    prompt.add_special_tokens,
                )
            )
            positions.append(i)
        out: list[dict[str, Any]] = [{"logprobs": None, "note": "not meaningful"} for _ in items]
        for i, scores in zip(positions, self.backend.logprobs(requests), strict=True):
            out[i] = {"logprobs": scores.logprobs}
        return out

    def close(self) -> None:
        """Close the reference model's backend."""
        self.backend.close()
