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
