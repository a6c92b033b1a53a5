"""vLLM engine start against weight swap on a real model; the swap checked against a fresh engine.

Not a ``make bench`` module (it needs a second checkpoint of the model):

    PYTHONPATH=$PWD python bench/engine_swap.py --model smollm2-135m --other CKPT_DIR

Inside ``shared_engines()`` (as a run): ``--model`` starts the engine, ``--other`` (a checkpoint of
the same architecture, e.g. an unlearned SmolLM2) is swapped in, then ``--model`` again. The
seconds are the backends' own stats (phases ``engine_start`` / ``engine_swap``).
Then a fresh engine on ``--other`` answers the same requests: greedy texts and prompt log-probs
must equal the swapped engine's (printed as counts of equal rows and the largest difference).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

PROMPTS = [
    "Who wrote the novel about the lighthouse keeper?",
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Name three prime numbers.",
    "Where was the author born?",
    "What does a harmful request look like?",
    "Summarise the plot of Hamlet.",
    "How do vaccines work?",
]


def _answers(backend: Any) -> tuple[list[list[float]], list[str]]:
    from unlearn_bench.backends.base import GenerateRequest, Message, ScoreRequest

    prompts = [backend.chat_prompt([Message("user", p)]) for p in PROMPTS]
    scores = backend.logprobs([ScoreRequest(p, "I do not know the answer.") for p in prompts])
    texts = backend.generate([GenerateRequest(p, max_new_tokens=48) for p in prompts])
    return [s.logprobs for s in scores], texts


def main() -> None:
    """Measure and print one JSON object."""
    from unlearn_bench.backends.vllm import VLLMBackend
    from unlearn_bench.backends.vllm_pool import shared_engines

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--other", required=True)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    wall = time.perf_counter()
    with shared_engines():
        for step, name in enumerate((args.model, args.other, args.model)):
            backend = VLLMBackend(name, progress=False)
            answers = _answers(backend)
            if step == 1:
                swapped = answers
            out[f"{step}: {name}"] = {**backend.stats.extra, **backend.stats.seconds}
            backend.close()
    out["shared_wall_s"] = round(time.perf_counter() - wall, 1)
    with VLLMBackend(args.other, progress=False) as backend:
        fresh = _answers(backend)
        out["fresh engine on other"] = {**backend.stats.extra, **backend.stats.seconds}
    out["greedy_texts_equal"] = sum(a == b for a, b in zip(swapped[1], fresh[1], strict=True))
    out["logprob_rows_equal"] = sum(a == b for a, b in zip(swapped[0], fresh[0], strict=True))
    pairs = zip(swapped[0], fresh[0], strict=True)
    out["max_abs_logprob_diff"] = max(
        abs(x - y) for a, b in pairs for x, y in zip(a, b, strict=True)
    )
    out["rows"] = len(PROMPTS)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
