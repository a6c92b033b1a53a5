"""Greedy HF generation that drops finished rows from the batch (issue 19, HF generation lever).

Plain ``model.generate`` keeps every row of a batch in every forward pass until the last row
ends or ``max_new_tokens`` is reached, so a batch whose answers mostly end early still pays for
the longest one on every row. :func:`greedy_shrinking` runs the same greedy decode but removes a
row (its KV cache included, ``DynamicCache.batch_select_indices``) as soon as it emits an end
token. Every forward pass mirrors what ``generate`` feeds the model: left padding, position ids
``cumsum(mask) - 1``, the 2D mask dropped when the prompts need no padding, a ``DynamicCache``,
``logits_to_keep=1`` and an argmax over float32 logits; finished rows come back filled with the
pad token exactly as ``generate`` fills them. Sampled requests stay on plain ``generate``: with
fewer rows, ``torch.multinomial`` would draw a different random stream than a seeded plain run.

Whether the text is identical to plain ``generate`` depends on float32 matrix products giving the
same per-row result at a smaller batch size; ``bench/bench_hf_generate.py`` counts identical
texts on real TOFU prompts and ``tests/integration/test_hf_generate.py`` checks the tiny model.
"""

from __future__ import annotations

from typing import Any

import torch

from unlearn_bench.backends.hf_scoring import left_padded

# Generation-config fields that add a logits processor or stopping rule to greedy ``generate``
# beyond the end token and max_new_tokens; a model whose config sets one keeps plain generate.
_PROCESSOR_FIELDS = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "sequence_bias",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "stop_strings",
    "max_time",
    "guidance_scale",
    "watermarking_config",
)


def can_shrink(model: Any) -> bool:
    """Whether greedy decoding of ``model`` with row dropping matches its plain ``generate``.

    Needs a decoder-only model whose forward takes ``position_ids``, ``past_key_values`` and
    ``logits_to_keep``, that generate would give a dynamic cache, and a generation config that
    adds no logits processor to greedy search.
    """
    import inspect

    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    params = inspect.signature(model.forward).parameters
    if not {"position_ids", "past_key_values", "logits_to_keep"} <= params.keys():
        return False
    # Hybrid and recurrent models cannot use generate's default DynamicCache.
    supports_dynamic = getattr(model, "_supports_default_dynamic_cache", None)
    if supports_dynamic is not None and not supports_dynamic():
        return False
    gen = getattr(model, "generation_config", None)
    if gen is None:
        return True
    if getattr(gen, "cache_implementation", None) not in (None, "dynamic"):
        return False
    defaults = type(gen)()
    return all(getattr(gen, f, None) == getattr(defaults, f, None) for f in _PROCESSOR_FIELDS)


@torch.no_grad()
def greedy_shrinking(
    model: Any,
    prompts: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_ids: list[int],
    device: torch.device,
    counts: dict[str, int],
) -> torch.Tensor:
    """The new tokens of each prompt, ``[rows, steps]``, finished rows padded with ``pad_id``.

    ``steps`` is the step at which the last row ended (or ``max_new_tokens``), as in the output
    of plain ``generate``. ``counts`` gains ``generate_forward_rows`` (rows summed over forward
    passes) and ``generate_forward_steps`` (forward passes).
    """
    from transformers import DynamicCache

    ids, full_mask = left_padded(prompts, pad_id)
    positions = (full_mask.cumsum(-1) - 1).masked_fill(full_mask == 0, 0).to(device)
    # generate drops an all-ones mask (no padding) before the first forward; so do we.
    mask: torch.Tensor | None = None if bool((full_mask == 1).all()) else full_mask.to(device)
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))  # as generate builds it
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    out_tokens = torch.full((len(prompts), max_new_tokens), pad_id, dtype=torch.long)
    live = torch.arange(len(prompts))  # the original row of each row still in the batch
    logits = _forward(model, ids.to(device), mask, positions, cache, counts)
    last = positions[:, -1]
    steps = 0
    for step in range(max_new_tokens):
        nxt = torch.argmax(logits, dim=-1)
        out_tokens[live, step] = nxt.cpu()
        steps = step + 1
        keep = ~torch.isin(nxt, eos)
        if step == max_new_tokens - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):
            index = keep.nonzero().squeeze(1)
            cache.batch_select_indices(index)
            live, nxt, last = live[index.cpu()], nxt[index], last[index]
            mask = None if mask is None else mask[index]
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        last = last + 1
        logits = _forward(model, nxt[:, None], mask, last[:, None], cache, counts)
    return out_tokens[:, :steps]


def _forward(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor,
    cache: Any,
    counts: dict[str, int],
) -> torch.Tensor:
    """One forward pass on the cache; the last position's logits as float32 (as generate)."""
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
        return_dict=True,
    )
    counts["generate_forward_rows"] = counts.get("generate_forward_rows", 0) + ids.shape[0]
    counts["generate_forward_steps"] = counts.get("generate_forward_steps", 0) + 1
    return out.logits[:, -1].to(dtype=torch.float32)
