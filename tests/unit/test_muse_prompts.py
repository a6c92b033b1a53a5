"""MUSE's prompt formats and the evaluator's per-set prompts, reference prefixes and inputs."""

from __future__ import annotations

import pytest

from unlearn_bench.backends.base import GenerateRequest, truncate_to_tokens
from unlearn_bench.backends.cache import CachedBackend
from unlearn_bench.backends.fake import FakeBackend
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import collect_observations, parse_task, score_samples
from unlearn_bench.prompts import format_prompt
from unlearn_bench.tasks import PromptSpec, find_task

SHOTS = [{"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "answer": "A2"}]


class WordFake(FakeBackend):
    """The fake backend (words are tokens) that can also cut text to N tokens, and records."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.generate_requests: list[GenerateRequest] = []

    def truncate_tokens(self, texts, max_tokens):
        return [" ".join(t.split()[:max_tokens]) for t in texts]

    def generate(self, requests):
        self.generate_requests += requests
        return super().generate(requests)


def _chat(messages):
    raise AssertionError("no chat template in MUSE prompts")


def test_icl_prompt_is_muses_format_exactly():
    prompt = format_prompt(PromptSpec(style="icl"), "Q3?", _chat, icl=SHOTS)
    assert (
        prompt.context
        == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer: "
    )
    assert prompt.add_special_tokens and prompt.answer_prefix == ""
    with pytest.raises(UnlearnBenchError, match="'icl' shots"):
        format_prompt(PromptSpec(style="icl"), "Q3?", _chat)


def test_raw_template_prompt_is_the_text_itself():
    spec = parse_task(find_task("muse_news"))
    prompt = format_prompt(spec.prompt, "Breaking news: the", _chat)
    assert (prompt.context, prompt.add_special_tokens, prompt.answer_prefix) == (
        "Breaking news: the",
        True,
        "",
    )
    with pytest.raises(UnlearnBenchError, match="prompt style 'chat'"):
        format_prompt(spec.prompt, "x", _chat, images=1)


def test_eval_sets_use_their_own_prompt_and_generation_settings():
    spec = parse_task(find_task("muse_news"))
    backend = WordFake()
    sets = {
        "verbmem_forget": [
            {"question": "the prompt text", "answer": " ".join(f"w{i}" for i in range(300))}
        ],
        "knowmem_forget": [{"question": "Q3?", "answer": "A3", "icl": SHOTS}],
    }
    samples = collect_observations(backend, spec, sets)
    verbmem, knowmem = backend.generate_requests
    assert (verbmem.prompt, verbmem.max_new_tokens, verbmem.stop) == ("the prompt text", 128, ())
    assert knowmem.prompt.endswith("Question: Q3?\nAnswer: ") and knowmem.prompt.startswith(
        "Question: Q1?"
    )
    assert (knowmem.max_new_tokens, knowmem.stop) == (32, ("\n\n", "\nQuestion", "Question:"))
    # VerbMem's reference: the answer cut to the generation budget (128 "tokens" = words here)
    prefix = samples["verbmem_forget"][0]["obs"]["reference_prefix"]
    assert prefix == " ".join(f"w{i}" for i in range(128))
    assert "reference_prefix" not in samples["knowmem_forget"][0]["obs"]
    # A run-level override of the generation budget moves the reference cut with it.
    short = collect_observations(WordFake(), spec, {"verbmem_forget": sets["verbmem_forget"]}, 5)
    assert short["verbmem_forget"][0]["obs"]["reference_prefix"] == "w0 w1 w2 w3 w4"


def test_reference_prefix_needs_a_backend_that_counts_tokens():
    spec = parse_task(find_task("muse_news"))
    sets = {"verbmem_forget": [{"question": "p", "answer": "a b c"}]}
    with pytest.raises(UnlearnBenchError, match="cannot cut text to model tokens"):
        collect_observations(FakeBackend(), spec, sets)
    # The response cache wraps a backend; the truncation is found on the wrapped one.
    assert truncate_to_tokens(CachedBackend(WordFake()), ["a b c"], 2) == ["a b"]


def test_input_only_fields_are_sent_but_not_stored():
    spec = parse_task(find_task("synthetic_people"))  # chat prompts: images are allowed
    backend = WordFake()
    record = {
        "question": "Q?", "answer": "A", "paraphrased_answer": "A", "perturbed_answer": ["B"],
        "_images": ("aW1n",),
    }  # fmt: skip
    samples = collect_observations(backend, spec, {"forget": [record]})
    assert "_images" not in samples["forget"][0]
    assert backend.generate_requests[0].images == ("aW1n",)
    knowmem = collect_observations(
        WordFake(), parse_task(find_task("muse_news")),
        {"knowmem_forget": [{"question": "Q3?", "answer": "A3", "icl": SHOTS}]},
    )  # fmt: skip
    assert knowmem["knowmem_forget"][0]["icl"] == SHOTS  # the exact prompt stays reproducible


def test_known_answer_scores_100_through_the_whole_pipeline():
    spec = parse_task(find_task("muse_news"))
    backend = WordFake(answers={"Question: Q3?\nAnswer: ": "A3"})
    samples = collect_observations(
        backend, spec, {"knowmem_forget": [{"question": "Q3?", "answer": "A3", "icl": SHOTS}]}
    )
    assert score_samples(spec, samples)["knowmem_forget/knowmem_f"]["value"] == pytest.approx(100.0)
