"""MedForget's factuality judge: an LLM grades a generated answer against the reference, 1-10.

MedForget (Wu et al. 2025) scores open-ended answers with an LLM judge (DeepSeek in the authors'
code, greedy, up to 256 tokens) that returns JSON ``{"score": <1-10>, "reasoning": "..."}``. Any
model a backend can load may judge here (slot ``factuality``, kind ``llm_factuality``)::

    scorers:
      factuality: {kind: llm_factuality, model: Qwen/Qwen2.5-7B-Instruct, backend: vllm}

The reply is stored verbatim; ``metrics.medforget.parse_factuality`` reads it strictly (the
metric re-parses the stored reply, so a re-score needs no judge). The prompt below is this
project's own wording of the published rubric (score medical facts of the answer against the
reference; 10 = fully correct, 1 = wrong or irrelevant).
"""

from __future__ import annotations

import hashlib
from typing import Any

from unlearn_bench.judges import SCORERS, ScoreItem, Scorer, ScorerContext, fill_placeholders
from unlearn_bench.metrics.medforget import parse_factuality

FACTUALITY_PROMPT = """\
You are grading a medical image question-answering system. Compare the system's answer with the
reference answer and rate its factuality: does it state the same key medical facts (anatomy,
findings, diagnosis, terminology) as the reference, without contradicting it?

Question: {question}
Reference answer: {reference}
System's answer: {response}

Scale: 10 = every key fact correct; 7-8 = core facts correct, small omissions; 5-6 = some key
terms right but important parts missing or partly wrong; 3-4 = little relevant content;
1-2 = wrong, irrelevant or empty.

Reply with only a JSON object: {"score": <integer from 1 to 10>, "reasoning": "<one sentence>"}"""


@SCORERS.register("llm_factuality")
class FactualityJudge(Scorer):
    """Factuality scores from a judge model's greedy reply (MedForget's Gen Score)."""

    kind = "llm_factuality"

    def __init__(
        self, context: ScorerContext, model: str, backend: str = "hf",
        backend_args: dict[str, Any] | None = None, chat: bool = True,
        max_new_tokens: int = 256, prompt: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(context)
        from unlearn_bench.backends.base import BACKENDS
        from unlearn_bench.backends.cache import CachedBackend

        self.template = prompt or FACTUALITY_PROMPT
        self.backend = CachedBackend(BACKENDS.get(backend)(model, **(backend_args or {})))
        self.chat, self.max_new_tokens = chat, max_new_tokens

    def identity(self) -> dict[str, Any]:
        """The judge model, its weights hash, backend and prompt hash."""
        ident = self.backend.identity()
        return {
            "judge": "llm factuality judge (1-10, strict JSON parser)",
            "model": ident.get("model"),
            "weights_sha256": ident.get("weights_sha256"),
            "backend": ident.get("backend"),
            "prompt_sha256": hashlib.sha256(self.template.encode()).hexdigest()[:16],
        }

    def _prompt(self, item: ScoreItem) -> str:
        from unlearn_bench.backends.base import Message

        values = {"question": item.question, "response": item.generation}
        text = fill_placeholders(self.template, values | {"reference": str(item.sample["answer"])})
        return self.backend.chat_prompt([Message("user", text)]) if self.chat else text

    def score(self, items: list[ScoreItem]) -> list[dict[str, Any]]:
        """The judge's verbatim reply and its strict parse for each answer."""
        from unlearn_bench.backends.base import GenerateRequest

        requests = [
            GenerateRequest(self._prompt(i), self.max_new_tokens, add_special_tokens=not self.chat)
            for i in items
        ]
        replies = self.backend.generate(requests)
        return [{"factuality": parse_factuality(r), "reply": r} for r in replies]

    def close(self) -> None:
        """Close the judge's backend."""
        self.backend.close()
