"""HF generation levers against plain ``generate`` on real TOFU forget01 greedy requests.

The requests are the suite's own: ``collect_observations`` builds every generation request of
``tofu_forget01`` from the real data (``../shared/data/tofu``) and the real prompt code (a
capturing backend answers its log-prob requests with placeholders and stops at generation),
and a seeded sample of ``BENCH_HFGEN_N`` of them (default 48) is generated with each variant on
base SmolLM2-135M (the ``smollm2-135m`` alias), with the task's ``max_new_tokens`` (200):

- ``plain_b{B}``: today's path, ``HFBackend`` with row dropping off (``model.generate`` on
  batches of B prompts sorted by prompt length);
- ``shrink_b{B}``: ``HFBackend``'s greedy path that drops finished rows (``hf_generate``);
- ``plain_unsorted_b16``: plain batches of 16 in request order (no length bucketing);
- ``static_b16``: plain batches with ``cache_implementation="static"``;
- ``continuous``: transformers' continuous batching (``model.generate_batch``).

Each variant reports wall seconds, new tokens (the texts re-tokenised), tokens/s, forward rows
where the backend counts them, and how many texts are identical to ``plain_b16``'s, which every
invocation measures first as its reference. ``BENCH_HFGEN_VARIANTS`` (comma-separated) picks the
variants after it; ``BENCH_HFGEN_MODEL`` another model (a smoke check). Runs accumulate in
``bench/results/hf_generate.json``: a second invocation is recorded beside the first.

    BENCH_HFGEN_VARIANTS=shrink_b16,shrink_b32 python -m bench.run hf_generate
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "hf_generate.json"
DATA = Path(os.environ.get("UNLEARN_BENCH_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))
TASK = "tofu_forget01"
SEED = 0
DEFAULT_VARIANTS = "shrink_b16,shrink_b32,shrink_b64"


class _Captured(Exception):
    """Raised by the capturing backend once it holds the generation requests."""


class _Capture:
    """Builds the suite's requests through the real evaluate path; answers no forward pass."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.requests: list[Any] = []

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def chat_prompt(self, messages: list[Any], add_generation_prompt: bool = True) -> str:
        return self.inner.chat_prompt(messages, add_generation_prompt)

    def logprobs(self, requests: list[Any]) -> list[Any]:
        from unlearn_bench.backends.base import TokenScores

        return [TokenScores([0.0], [False]) for _ in requests]  # placeholders, never scored

    def generate(self, requests: list[Any]) -> list[str]:
        self.requests = list(requests)
        raise _Captured


def suite_requests(backend: Any) -> list[Any]:
    """Every generation request of the TOFU forget01 suite, in the evaluate path's order."""
    from unlearn_bench.evaluate import collect_observations, parse_task
    from unlearn_bench.tasks import find_task, load_task_data

    spec = parse_task(find_task(TASK))
    data = load_task_data(spec, DATA)
    sets = {name: data[e.split] for name, e in spec.evaluation.items()}
    capture = _Capture(backend)
    try:
        collect_observations(capture, spec, sets)
    except _Captured:
        return capture.requests
    raise RuntimeError(f"{TASK} made no generation request")


def _count_tokens(backend: Any, texts: list[str]) -> int:
    return sum(len(backend.tokenizer(t, add_special_tokens=False).input_ids) for t in texts)


def _through_backend(backend: Any, requests: list[Any], batch: int, shrink: bool) -> list[str]:
    backend.batch_size, backend.shrink_greedy = batch, shrink
    return backend.generate(requests)


def _unsorted(backend: Any, requests: list[Any]) -> list[str]:
    backend.batch_size, backend.shrink_greedy = 16, False
    out: list[str] = []
    for start in range(0, len(requests), 16):  # one backend call per batch: request order kept
        out += backend.generate(requests[start : start + 16])
    return out


def _plain_model(backend: Any, requests: list[Any], **extra: Any) -> list[str]:
    """Plain ``model.generate`` on the backend's batches (length-sorted, 16), plus ``extra``."""
    import torch

    from unlearn_bench.backends.base import apply_stops
    from unlearn_bench.backends.hf_scoring import left_padded as left_pad

    tok = backend.tokenizer
    encoded = [tok(r.prompt, add_special_tokens=r.add_special_tokens).input_ids for r in requests]
    order = sorted(range(len(requests)), key=lambda i: -len(encoded[i]))
    out = [""] * len(requests)
    for start in range(0, len(order), 16):
        group = order[start : start + 16]
        ids, mask = left_pad([encoded[i] for i in group], tok.pad_token_id)
        with torch.no_grad():
            gen = backend.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=requests[0].max_new_tokens,
                do_sample=False, top_k=None, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, **extra,
            )  # fmt: skip
        texts = tok.batch_decode(gen[:, ids.shape[1] :], skip_special_tokens=True)
        for i, text in zip(group, texts, strict=True):
            out[i] = apply_stops(text, requests[i].stop)
    return out


def _continuous(backend: Any, requests: list[Any]) -> list[str]:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    from unlearn_bench.backends.base import apply_stops

    tok = backend.tokenizer
    encoded = [tok(r.prompt, add_special_tokens=r.add_special_tokens).input_ids for r in requests]
    config = GenerationConfig(
        max_new_tokens=requests[0].max_new_tokens, do_sample=False,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    # Sized explicitly: left to itself on CPU it takes 90% of the machine's RAM for its cache
    # (the process was OOM-killed on the 24 GiB machine).
    longest = max(len(e) for e in encoded) + requests[0].max_new_tokens
    cb = ContinuousBatchingConfig(
        page_size=64, num_blocks=-(-longest // 64) * len(encoded) + 8, max_batch_tokens=1024,
        max_memory_percent=0.05,
    )  # fmt: skip
    outputs = backend.model.generate_batch(
        inputs=encoded, generation_config=config, continuous_batching_config=cb
    )
    by_id = list(outputs.values())
    by_prompt = {tuple(o.prompt_ids): o.generated_tokens for o in by_id}
    texts = [tok.decode(by_prompt[tuple(e)], skip_special_tokens=True) for e in encoded]
    return [apply_stops(t, r.stop) for t, r in zip(texts, requests, strict=True)]


def measure(backend: Any, requests: list[Any], variant: str) -> tuple[dict[str, Any], list[str]]:
    """One variant's wall seconds, tokens, tokens/s and forward rows; and its texts."""
    backend.stats.extra.clear()
    start = time.perf_counter()
    if variant.startswith(("plain_b", "shrink_b")):
        batch = int(variant.rsplit("_b", 1)[1])
        texts = _through_backend(backend, requests, batch, variant.startswith("shrink"))
    elif variant == "plain_unsorted_b16":
        texts = _unsorted(backend, requests)
    elif variant == "static_b16":
        texts = _plain_model(backend, requests, cache_implementation="static")
    elif variant == "continuous":
        texts = _continuous(backend, requests)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    wall = time.perf_counter() - start
    tokens = _count_tokens(backend, texts)
    row = {"wall_s": round(wall, 2), "new_tokens": tokens, "tokens_per_s": round(tokens / wall, 1)}
    if "generate_forward_rows" in backend.stats.extra:
        row["forward_rows"] = backend.stats.extra["generate_forward_rows"]
    return row, texts


def run() -> dict[str, Any]:
    """Measure plain_b16 and the chosen variants on one seeded sample; append to the runs."""
    import torch

    from unlearn_bench.backends.hf import HFBackend

    n = int(os.environ.get("BENCH_HFGEN_N", "48"))
    variants = os.environ.get("BENCH_HFGEN_VARIANTS", DEFAULT_VARIANTS).split(",")
    model = os.environ.get("BENCH_HFGEN_MODEL", "smollm2-135m")  # another model: a smoke check
    backend = HFBackend(model, device="cpu", progress=False)
    everything = suite_requests(backend)
    requests = random.Random(SEED).sample(everything, n)
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    reference, ref_texts = measure(backend, requests, "plain_b16")
    this_run: dict[str, Any] = {"plain_b16": {**reference, "identical_to_plain_b16": n}}
    for variant in variants:
        try:
            row, texts = measure(backend, requests, variant)
        except Exception as exc:  # noqa: BLE001 - a lever that cannot run here is a result too
            this_run[variant] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        same = sum(a == b for a, b in zip(texts, ref_texts, strict=True))
        row["identical_to_plain_b16"] = same
        row["speedup_vs_plain_b16"] = round(reference["wall_s"] / row["wall_s"], 2)
        this_run[variant] = row
    previous = json.loads(OUT.read_text()).get("runs", []) if OUT.is_file() else []
    run_entry = {"when": when, "model": model, "prompts": n,
                 "torch_threads": torch.get_num_threads(), "variants": this_run}  # fmt: skip
    result: dict[str, Any] = {
        "task": TASK, "model": model, "prompts": n, "suite_requests": len(everything),
        "sample_seed": SEED, "max_new_tokens": requests[0].max_new_tokens,
        "runs": [*previous, run_entry],
    }  # fmt: skip
    result["summary"] = _summary(n, this_run)
    return result


def _summary(n: int, variants: dict[str, Any]) -> str:
    parts = []
    for name, row in variants.items():
        if "error" in row:
            parts.append(f"{name} failed")
        else:
            parts.append(
                f"{name} {row['tokens_per_s']} tok/s ({row['identical_to_plain_b16']}/{n} same)"
            )
    return f"{TASK} greedy generation, {n} sampled requests: " + ", ".join(parts)
