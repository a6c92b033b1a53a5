from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
from unlearn_bench.backends.cache import CachedBackend, ResponseCache, cache_key
from unlearn_bench.backends.fake import FakeBackend

IDENT_A = {"backend": "hf", "weights_sha256": "aaa", "dtype": "float32", "model": "a"}
IDENT_B = {"backend": "hf", "weights_sha256": "bbb", "dtype": "float32", "model": "a"}


def test_key_depends_on_weights_request_and_params():
    req = GenerateRequest("q", 10)
    assert cache_key(IDENT_A, "generate", req) != cache_key(IDENT_B, "generate", req)
    assert cache_key(IDENT_A, "generate", req) != cache_key(
        IDENT_A, "generate", GenerateRequest("q", 11)
    )
    assert cache_key(IDENT_A, "generate", req) != cache_key(IDENT_A, "logprobs", req)
    assert cache_key(IDENT_A, "generate", req) != cache_key(
        {**IDENT_A, "dtype": "bfloat16"}, "generate", req
    )


def test_key_ignores_display_fields_but_not_weights():
    req = ScoreRequest("c", "x")
    renamed = {**IDENT_A, "model": "other-name", "model_path": "/elsewhere", "note": "n"}
    assert cache_key(IDENT_A, "logprobs", req) == cache_key(renamed, "logprobs", req)


def test_key_without_weights_hash_falls_back_to_path():
    a = {"backend": "x", "model_path": "/m1"}
    b = {"backend": "x", "model_path": "/m2"}
    req = ScoreRequest("c", "x")
    assert cache_key(a, "logprobs", req) != cache_key(b, "logprobs", req)


def test_cached_backend_never_mixes_models(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    model_a = CachedBackend(FakeBackend("model-a"), cache)
    model_b = CachedBackend(FakeBackend("model-b"), cache)
    reqs = [ScoreRequest("context", "one two three")]
    first_a = model_a.logprobs(reqs)
    first_b = model_b.logprobs(reqs)
    assert first_a != first_b
    assert model_b.misses == 1
    assert model_a.logprobs(reqs) == first_a
    assert model_a.hits == 1
    assert model_a.inner.stats.scored_requests == 1  # the second call made no forward pass


def test_cache_survives_reopen(tmp_path):
    path = tmp_path / "c.sqlite"
    reqs = [GenerateRequest("prompt", 5)]
    first = CachedBackend(FakeBackend("m"), ResponseCache(path))
    out = first.generate(reqs)
    first.close()
    second = CachedBackend(FakeBackend("m"), ResponseCache(path))
    assert second.generate(reqs) == out
    assert second.inner.stats.generated_requests == 0


def test_duplicate_requests_in_one_call_are_computed_once(tmp_path):
    backend = CachedBackend(FakeBackend("m"), ResponseCache(tmp_path / "c.sqlite"))
    reqs = [ScoreRequest("c", "a b"), ScoreRequest("c", "x"), ScoreRequest("c", "a b")]
    out = backend.logprobs(reqs)
    assert out[0] == out[2]
    assert backend.inner.stats.scored_requests == 2
