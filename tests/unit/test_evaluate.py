"""The evaluation pipeline on the fake backend: requests, stored observations, aggregates."""

import math

import pytest

from unlearn_bench.backends.fake import FakeBackend
from unlearn_bench.evaluate import collect_observations, parse_task, score_samples
from unlearn_bench.tasks import find_task

RECORD = {
    "question": "Where was Ada born?",
    "answer": "Ada was born in Oslo.",
    "paraphrased_answer": "Oslo is where Ada was born.",
    "perturbed_answer": [
        "Rome is where Ada was born.",
        "Lima is where Ada was born.",
        "Kyiv is where Ada was born.",
    ],
}


@pytest.fixture
def spec():
    return parse_task(find_task("synthetic_people"))


def test_known_answer_scores_as_expected(spec):
    # The fake "knows" Ada's answer: every answer word gets log-prob -0.05 and is greedy.
    backend = FakeBackend(answers={"Where was Ada born?": RECORD["answer"]})
    samples = collect_observations(backend, spec, {"forget": [RECORD]})
    sample = samples["forget"][0]
    assert sample["obs"]["answer"]["logprobs"] == [-0.05] * 5
    assert sample["obs"]["generation"] == RECORD["answer"]
    assert len(sample["obs"]["perturbed_answer"]) == 3
    results = score_samples(spec, samples)
    assert results["forget/probability"]["value"] == pytest.approx(math.exp(-0.05))
    assert results["forget/rouge_l_recall"]["value"] == pytest.approx(1.0)
    assert results["forget/exact_memorisation"]["value"] == pytest.approx(1.0)
    assert results["forget/extraction_strength"]["value"] == pytest.approx(1.0)
    assert results["forget/probability"]["n"] == 1
    assert results["forget/probability"]["stderr"] is None  # undefined for one sample


def test_truth_ratio_from_stored_logprobs(spec):
    backend = FakeBackend()
    samples = collect_observations(backend, spec, {"forget": [RECORD]})
    obs = samples["forget"][0]["obs"]
    para = sum(obs["paraphrased_answer"]["logprobs"]) / len(obs["paraphrased_answer"]["logprobs"])
    pert = [sum(p["logprobs"]) / len(p["logprobs"]) for p in obs["perturbed_answer"]]
    ratio = math.exp(sum(pert) / 3 - para)  # geometric mean of perturbed over paraphrased
    results = score_samples(spec, samples)
    assert results["forget/truth_ratio_forget"]["value"] == pytest.approx(min(ratio, 1 / ratio))


def test_only_needed_observations_are_requested(spec):
    backend = FakeBackend()
    other = dict(RECORD, question="Where was Bo born?")
    samples = collect_observations(backend, spec, {"holdout": [RECORD, other]})
    assert set(samples["holdout"][0]["obs"]) == {"answer"}  # holdout asks only for probability
    assert backend.stats.scored_requests == 2 and backend.stats.generated_requests == 0


def test_identical_requests_reach_the_backend_once(spec):
    backend = FakeBackend()
    samples = collect_observations(backend, spec, {"holdout": [RECORD, RECORD]})
    assert backend.stats.scored_requests == 1
    first, second = samples["holdout"]
    assert first["obs"]["answer"] == second["obs"]["answer"]


def test_stderr_over_samples(spec):
    # Ada's answer is known (every token -0.05); Bo's gets the fake's pseudo-random log-probs.
    backend = FakeBackend(answers={"Where was Ada born?": RECORD["answer"]})
    other = dict(RECORD, question="Where was Bo born?", answer="Bo was born in Bergen.")
    samples = collect_observations(backend, spec, {"holdout": [RECORD, other]})
    results = score_samples(spec, samples)
    bo = samples["holdout"][1]["obs"]["answer"]["logprobs"]
    p_ada, p_bo = math.exp(-0.05), math.exp(sum(bo) / len(bo))
    assert p_bo < p_ada  # the two items really differ
    entry = results["holdout/probability"]
    # n = 2: sample std |a - b| / sqrt 2, standard error std / sqrt 2 = |a - b| / 2.
    assert entry["n"] == 2
    assert entry["value"] == pytest.approx((p_ada + p_bo) / 2)
    assert entry["stderr"] == pytest.approx(abs(p_ada - p_bo) / 2)


def test_results_store_a_range_respecting_interval(spec):
    # Two items: a bootstrap resample's mean is p_bo, the midpoint or p_ada (probability 1/4,
    # 1/2, 1/4), so the 95% percentile interval is exactly [p_bo, p_ada], inside [0, 1].
    backend = FakeBackend(answers={"Where was Ada born?": RECORD["answer"]})
    other = dict(RECORD, question="Where was Bo born?", answer="Bo was born in Bergen.")
    samples = collect_observations(backend, spec, {"holdout": [RECORD, other]})
    entry = score_samples(spec, samples)["holdout/probability"]
    bo = samples["holdout"][1]["obs"]["answer"]["logprobs"]
    assert entry["ci"] == pytest.approx([math.exp(sum(bo) / len(bo)), math.exp(-0.05)])
    assert entry["ci_method"].startswith("percentile bootstrap")
