"""LLM-judge prompts: placeholders are filled in one pass, so inserted text is never re-scanned."""

from __future__ import annotations

from unlearn_bench.judges.llm_judge import HALLUCINATION_PROMPT, fill_placeholders


def test_generation_containing_a_placeholder_stays_verbatim() -> None:
    template = "Q: {question}\nRef: {reference}\nA: {response}"
    values = {
        "question": "Who?",
        "response": "It is {reference} and {question}.",
        "reference": "Ada",
    }
    assert fill_placeholders(template, values) == (
        "Q: Who?\nRef: Ada\nA: It is {reference} and {question}."
    )


def test_the_shipped_hallucination_prompt_keeps_a_braced_generation() -> None:
    values = {"question": "Capital of France?", "response": "{reference}", "reference": "Paris"}
    text = fill_placeholders(HALLUCINATION_PROMPT, values)
    assert "Reference answer: Paris" in text
    assert "Agent's answer: {reference}" in text
    assert text.count("Paris") == 1


def _item(question: str, answer: str, generation: str):
    from unlearn_bench.backends.base import GenerateRequest
    from unlearn_bench.judges import ScoreItem

    sample = {"eval_set": "s", "question": question, "answer": answer,
              "obs": {"generation": generation}}  # fmt: skip
    return ScoreItem(sample, GenerateRequest(question, 8))


def _context(slot: str):
    from unlearn_bench.backends.fake import FakeBackend
    from unlearn_bench.judges import ScorerContext
    from unlearn_bench.tasks import DataSpec, EvalSetSpec, TaskSpec

    spec = TaskSpec("t", 1, DataSpec("x"), {"s": EvalSetSpec("s", [])})
    return ScorerContext(spec, slot, FakeBackend("evaluated"))


def test_factuality_judge_keeps_placeholders_inside_the_question_verbatim() -> None:
    # The fake judge replies only when its prompt holds the question exactly as asked; the old
    # chained replace put the gold answer and the generation inside the question.
    from unlearn_bench.judges.factuality import FactualityJudge

    question = "Is {reference} or {response} on the film?"
    reply = '{"score": 9, "reasoning": "same finding"}'
    judge = FactualityJudge(
        _context("factuality"), model="judge", backend="fake",
        backend_args={"answers": {f"Question: {question}\n": reply}},
    )  # fmt: skip
    [result] = judge.score([_item(question, "left lung nodule", "a nodule, left lung")])
    assert result == {"factuality": 9, "reply": reply}


def test_llm_judge_keeps_a_braced_generation_verbatim() -> None:
    from unlearn_bench.judges.llm_judge import LLMJudge

    judge = LLMJudge(
        _context("hallucination"), model="judge", backend="fake", chat=False,
        backend_args={"answers": {"Agent's answer: It is {reference} and {question}.": "hallucinated"}},
    )  # fmt: skip
    [result] = judge.score(
        [_item("Capital of France?", "Paris", "It is {reference} and {question}.")]
    )
    assert result == {"flagged": True, "reply": "hallucinated"}
