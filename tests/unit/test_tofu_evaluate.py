"""Evaluating a TOFU task: each distinct forward pass once, extras on the answer's own pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from tofu_fixtures import write_tofu_fixture

from unlearn_bench.backends.base import ScoreRequest, TokenScores
from unlearn_bench.backends.fake import FakeBackend
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import collect_observations, parse_task, score_samples
from unlearn_bench.tasks import find_task, load_task_data


class RecordingBackend(FakeBackend):
    """The fake backend, recording requests and answering the Min-K%++ / GradNorm extras."""

    capabilities = frozenset({"logprobs", "generate", "vocab_stats", "grad"})

    def __init__(self) -> None:
        super().__init__("recording")
        self.requests: list[ScoreRequest] = []

    def logprobs(self, requests: list[ScoreRequest]) -> list[TokenScores]:
        self.requests.extend(requests)
        out = []
        for req, base in zip(requests, super().logprobs(requests), strict=True):
            n = len(base.logprobs)
            stats = req.vocab_stats
            out.append(
                TokenScores(
                    base.logprobs,
                    base.greedy,
                    [-2.0] * n if stats else None,
                    [1.5] * n if stats else None,
                    4.0 if req.grad_norm else None,
                    0.5 if req.grad_norm else None,
                )
            )
        return out


@pytest.fixture
def tofu_sets(tmp_path: Path):
    spec = parse_task(find_task("tofu_forget01"))
    splits = load_task_data(spec, write_tofu_fixture(tmp_path / "tofu"))
    return spec, {name: splits[e.split] for name, e in spec.evaluation.items()}


def test_each_forward_pass_once_and_extras_only_on_mia_answers(tofu_sets) -> None:
    spec, sets = tofu_sets
    backend = RecordingBackend()
    samples = collect_observations(backend, spec, sets)
    keys = [(r.context, r.continuation, r.add_special_tokens) for r in backend.requests]
    assert len(keys) == len(set(keys))
    # Forget (2 items) and retain (4): answer, paraphrase, 3 perturbed; holdout (2): the answer.
    # Real authors (2): the answer doubles as the paraphrase -> 1 + 3 requests each. The
    # fixture's world facts are the same two records, so they add no request at all.
    expected = 2 * 5 + 4 * 5 + 2 * 1 + 2 * 4 + 0
    assert len(backend.requests) == expected
    answers = {s["answer"] for name in ("forget", "holdout") for s in samples[name]}
    for req in backend.requests:
        flagged = req.continuation in answers
        assert req.vocab_stats is flagged and req.grad_norm is flagged, req.continuation
    forget = samples["forget"][0]["obs"]
    n = len(forget["answer"]["logprobs"])
    assert forget["answer_vocab_stats"] == {"means": [-2.0] * n, "stds": [1.5] * n}
    assert forget["answer_grad_norm"] == {"l2": 4.0, "mean_param_l2": 0.5}
    real = samples["real_authors"][0]["obs"]
    assert real["paraphrased_answer"] == real["answer"] and "answer_vocab_stats" not in real
    results = score_samples(spec, samples)
    assert results["forget/mia_gradnorm"]["value"] == -4.0
    assert results["holdout/mia_gradnorm_mean_param"]["value"] == -0.5
    assert results["real_authors/truth_ratio"]["n"] == 2


def test_backend_without_vocab_stats_or_grad_is_refused(tofu_sets) -> None:
    spec, sets = tofu_sets
    with pytest.raises(UnlearnBenchError, match=r"lacks \['grad', 'vocab_stats'\]"):
        collect_observations(FakeBackend("plain"), spec, sets)
