"""Greedy generation that drops finished rows gives plain ``generate``'s text, on fewer rows.

The tiny random model repeats one token per prompt, so its weights are redrawn with a larger
scale to make varied sequences; the end token is then a token those sequences emit at
different steps (found from plain ``generate``'s output), so rows finish at different steps,
and one never does. Expected texts and row counts come from plain ``model.generate``.
"""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_bench.backends import hf_generate, hf_scoring
from unlearn_bench.backends.base import GenerateRequest
from unlearn_bench.backends.hf import HFBackend

PROMPTS = [
    "Hi",
    "Question: Who wrote the book?\nAnswer:",
    "What is the capital of France? The capital",
    "abc",
    "In which city was the author born?",
    "She wrote it",
]
NEW = 16


@pytest.fixture(scope="module")
def varied(tiny_model_dir):
    """The tiny model with weights redrawn at std 0.5 (varied greedy text), and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 0.5)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _plain(model, tokenizer, prompts, eos, **sampling):
    """New tokens from plain ``model.generate`` on one left-padded batch of ``prompts``."""
    encoded = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    ids, mask = hf_scoring.left_padded(encoded, tokenizer.pad_token_id)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=NEW,
            do_sample=bool(sampling),
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
            **sampling,
        )
    return out[:, ids.shape[1] :]


def _backend(model_dir, model, tokenizer):
    """An HF backend on the given model objects, all prompts in one batch."""
    return HFBackend(
        str(model_dir), model_object=model, tokenizer_object=tokenizer, batch_size=8, progress=False
    )


def _backend_order(tokenizer):
    """PROMPTS in the order HFBackend batches them: longest prompt first (a stable sort)."""
    lengths = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in PROMPTS]
    assert len(set(lengths)) > 2  # mixed lengths: left padding is exercised
    return [PROMPTS[i] for i in sorted(range(len(PROMPTS)), key=lambda i: -lengths[i])]


def _pick_end_token(tokens: torch.Tensor) -> int:
    """A token that plain generate emits first at different steps in several rows."""
    first: dict[int, dict[int, int]] = {}
    for row, seq in enumerate(tokens.tolist()):
        for step, tok in enumerate(seq):
            first.setdefault(tok, {}).setdefault(row, step)
    best = max(first, key=lambda t: (len(set(first[t].values()) - {0}), -len(first[t])))
    assert len(set(first[best].values())) >= 3 and len(first[best]) < tokens.shape[0]
    return best


def test_shrinking_greedy_matches_plain_generate_on_fewer_rows(varied, tiny_model_dir):
    model, base_tokenizer = varied
    ordered = _backend_order(base_tokenizer)
    end = _pick_end_token(_plain(model, base_tokenizer, ordered, eos=None))
    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(end)
    assert tokenizer.eos_token_id == end
    expected_tokens = _plain(model, tokenizer, ordered, eos=end)
    expected = dict(
        zip(ordered, tokenizer.batch_decode(expected_tokens, skip_special_tokens=True), strict=True)
    )
    # A row takes part in the forward passes up to and including the one that gives its end
    # token; plain generate runs every row for every step.
    lengths = [seq.index(end) + 1 if end in seq else NEW for seq in expected_tokens.tolist()]
    assert len(set(lengths)) >= 3 and NEW in lengths

    backend = _backend(tiny_model_dir, model, tokenizer)
    assert backend.shrink_greedy
    texts = backend.generate([GenerateRequest(p, NEW) for p in PROMPTS])
    assert texts == [expected[p] for p in PROMPTS]
    assert backend.stats.extra["generate_batches_shrinking"] == 1
    assert backend.stats.extra["generate_forward_rows"] == sum(lengths)
    assert backend.stats.extra["generate_forward_steps"] == max(lengths)

    backend.shrink_greedy = False  # today's path through the backend: all rows, every step
    backend.stats.extra.clear()
    assert backend.generate([GenerateRequest(p, NEW) for p in PROMPTS]) == texts
    assert backend.stats.extra["generate_batches_plain"] == 1
    assert backend.stats.extra["generate_forward_rows"] == len(PROMPTS) * max(lengths)


def test_sampled_requests_keep_plain_seeded_generate(varied, tiny_model_dir):
    model, tokenizer = varied
    ordered = _backend_order(tokenizer)
    torch.manual_seed(7)
    plain = _plain(
        model, tokenizer, ordered, eos=tokenizer.eos_token_id, temperature=0.9, top_p=1.0
    )
    expected = dict(
        zip(ordered, tokenizer.batch_decode(plain, skip_special_tokens=True), strict=True)
    )
    backend = _backend(tiny_model_dir, model, tokenizer)
    requests = [GenerateRequest(p, NEW, temperature=0.9, seed=7) for p in PROMPTS]
    assert backend.generate(requests) == [expected[p] for p in PROMPTS]
    assert backend.stats.extra == {
        "generate_batches_plain": 1,
        "generate_forward_rows": plain.numel(),
        "generate_forward_steps": plain.shape[1],
    }


def test_generation_config_with_a_logits_processor_keeps_plain_generate(varied, tiny_model_dir):
    model, tokenizer = varied
    saved = copy.deepcopy(model.generation_config)
    try:
        assert hf_generate.can_shrink(model)
        model.generation_config.repetition_penalty = 1.3
        assert not hf_generate.can_shrink(model)
        backend = _backend(tiny_model_dir, model, tokenizer)
        assert not backend.shrink_greedy
        backend.generate([GenerateRequest(PROMPTS[0], 4)])
        assert "generate_batches_shrinking" not in backend.stats.extra
    finally:
        model.generation_config = saved
