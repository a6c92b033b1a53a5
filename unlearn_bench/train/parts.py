"""The batch parts an unlearning method trains on, built from a task's splits.

"forget" and "retain" are drawn from their own seeded streams. The parts whose rows must share
the forget row's question are derived per step from that step's forget examples (see
:class:`~unlearn_bench.train.batches.BatchSource`): "idk" (forget prompt + a refusal) and
"mismatch" (forget prompt + K random normal answers, GA+Mismatch).
"""

from __future__ import annotations

import random
from typing import Any

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.prompts import FormattedPrompt, format_prompt, tokenizer_chat
from unlearn_bench.tasks import TaskSpec
from unlearn_bench.train.batches import BatchSource, Derive, Example


def examples_for(
    spec: TaskSpec, tokenizer: Any, records: list[dict], answer_key: str = "answer"
) -> list[Example]:
    """Format ``records`` (question + ``answer_key``) with the task's prompt and chat template."""
    chat = tokenizer_chat(tokenizer)
    return [
        Example(format_prompt(spec.prompt, r["question"], chat), r[answer_key]) for r in records
    ]


def refusal_rows(refusals: list[str]) -> Derive:
    """Each forget row's prompt with one refusal drawn at random (IdkPO / DPO, FLAT's y_e)."""

    def derive(forget: list[Example], rng: random.Random) -> list[Example]:
        return [Example(e.prompt, rng.choice(refusals)) for e in forget]

    return derive


def mismatch_rows(normal_answers: list[str], k: int) -> Derive:
    """Each forget prompt paired with ``k`` distinct normal answers drawn afresh (Yao et al.).

    The authors' code (kevinyaobytedance/llm_unlearn, ``utils.py``) calls
    ``random.sample(normal_ans, k=K)`` per forget prompt at every step; rows are grouped by
    prompt, so rows ``j*k .. j*k+k-1`` belong to forget row ``j``.
    """
    if k < 1:
        raise UnlearnBenchError(f"ga_mismatch k must be >= 1, got {k}")
    if k > len(normal_answers):
        raise UnlearnBenchError(
            f"ga_mismatch k={k} needs at least {k} normal answers; the retain split has "
            f"{len(normal_answers)}"
        )

    def derive(forget: list[Example], rng: random.Random) -> list[Example]:
        return [Example(e.prompt, a) for e in forget for a in rng.sample(normal_answers, k)]

    return derive


def safe_rows(safe_by_prompt: dict[FormattedPrompt, str]) -> Derive:
    """Each forget prompt with the task's safe response to it (SFT / DPO alignment baselines)."""

    def derive(forget: list[Example], rng: random.Random) -> list[Example]:
        return [Example(e.prompt, safe_by_prompt[e.prompt]) for e in forget]

    return derive


def check_parts(
    spec: TaskSpec, splits: dict[str, list[dict]], method: str, needs: frozenset[str]
) -> None:
    """Refuse, with one line, a method whose batch parts the task's data cannot supply."""
    if "safe" in needs and not any(r.get("safe_answer") for r in splits[spec.splits.forget]):
        raise UnlearnBenchError(
            f"method {method!r} needs safe responses, but task {spec.name!r} has none (no forget "
            "row has 'safe_answer'; llmu_harmful with PKU v0 data provides them)"
        )


def _paired_forget(
    spec: TaskSpec, tokenizer: Any, forget: list[dict]
) -> tuple[list[Example], dict[FormattedPrompt, str]]:
    """The forget rows that carry a ``safe_answer``, and their prompt -> safe answer map."""
    paired = [r for r in forget if r.get("safe_answer")]
    examples = examples_for(spec, tokenizer, paired)
    safe = examples_for(spec, tokenizer, paired, answer_key="safe_answer")
    return examples, {e.prompt: s.answer for e, s in zip(examples, safe, strict=True)}


def batch_source(
    spec: TaskSpec,
    tokenizer: Any,
    splits: dict[str, list[dict]],
    needs: frozenset[str],
    method_config: Any,
    batch_size: int,
    max_length: int,
    seed: int,
) -> BatchSource:
    """The seeded source of the parts in ``needs`` for one unlearning run."""
    check_parts(spec, splits, "this method", needs)
    forget = splits[spec.splits.forget]
    parts = {"forget": examples_for(spec, tokenizer, forget)}
    derived: dict[str, Derive] = {}
    if "safe" in needs:
        parts["forget"], safe_by_prompt = _paired_forget(spec, tokenizer, forget)
        derived["safe"] = safe_rows(safe_by_prompt)
    retain = splits.get(spec.splits.retain) or []
    if {"retain", "mismatch"} & needs and not retain:
        raise UnlearnBenchError(
            f"this method needs retain data but split {spec.splits.retain!r} is empty"
        )
    if "retain" in needs:
        parts["retain"] = examples_for(spec, tokenizer, retain)
    if "mismatch" in needs:
        answers = [r["answer"] for r in retain]
        derived["mismatch"] = mismatch_rows(answers, method_config.k)
    if "idk" in needs:
        from unlearn_bench.data.refusals import load_refusals

        derived["idk"] = refusal_rows(load_refusals(None))
    return BatchSource(tokenizer, parts, batch_size, max_length, seed, derived=derived)
