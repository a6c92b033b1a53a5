"""Continuation scoring for the HF backend: plain batches, shared-prefix batches, gradients.

Every path returns, per continuation token t, log p(x_t | context, x_<t) and whether x_t was
the argmax, plus optional extras (``TokenScores``). Three ways to get there:

- **plain**: context + continuation rows, right-padded, one forward pass per batch; the LM head
  runs only on the positions that predict continuation tokens (``logits_to_keep``).
- **shared prefix**: TOFU scores up to seven continuations (answer, paraphrase, five perturbed)
  after one question. The prompts of a few questions run once, left-padded, with ``use_cache``;
  their KV cache is repeated per continuation and the continuations run on top. Same positions
  and same attention as the plain path, so the same numbers up to float rounding.
- **gradient**: one request at a time with autograd on, for the GradNorm attack (the reference;
  ``hf_gradbatch`` answers several per pass once it has matched this one).

Attention masks come from lengths, never from ``input_ids != pad_id`` (SPEC pitfall 1).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from unlearn_bench.backends.base import TokenScores
from unlearn_bench.backends.hf_gradnorm import ghost_norms
from unlearn_bench.errors import UnlearnBenchError

Item = tuple[list[int], list[int]]  # (context ids, continuation ids)


def vocab_moments(logprobs: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per row of log-probs over the vocabulary: mu = sum_v p_v log p_v and std of log p.

    The std is sqrt(sum_v p_v (log p_v - mu)^2), the same quantity as
    sqrt(sum_v p_v (log p_v)^2 - mu^2) (Min-K%++, Zhang et al. 2024) without the cancellation
    of the difference form. Computed in float64; vocabulary entries with p = 0 add nothing.
    """
    lp = logprobs.double()
    p = lp.exp()
    zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
    mu = torch.where(p > 0, p * lp, zero).sum(-1)
    var = torch.where(p > 0, p * (lp - mu[:, None]) ** 2, zero).sum(-1)
    return mu.tolist(), var.sqrt().tolist()


def scores_from_logits(logits: torch.Tensor, target: list[int], vocab_stats: bool) -> TokenScores:
    """``logits``: one row per continuation token, the row that predicts it."""
    logits = logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    tgt = torch.tensor(target, device=logits.device)
    picked = logprobs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    greedy = logits.argmax(dim=-1) == tgt
    means, stds = vocab_moments(logprobs) if vocab_stats else (None, None)
    return TokenScores(picked.tolist(), greedy.tolist(), means, stds)


def supports_logits_to_keep(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (most HF causal LMs since 4.50)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def right_padded(items: list[Item], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context + continuation rows, right-padded: ids and the attention mask (from lengths)."""
    lengths = [len(c) + len(a) for c, a in items]
    ids = torch.full((len(items), max(lengths)), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), max(lengths)), dtype=torch.long)
    for row, (ctx, cont) in enumerate(items):
        ids[row, : lengths[row]] = torch.tensor(ctx + cont)
        mask[row, : lengths[row]] = 1
    return ids, mask


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts right-aligned in one ``[rows, width]`` id tensor, and their 0/1 attention mask."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


@torch.no_grad()
def score_plain(
    model: Any, items: list[Item], stats: list[bool], pad_id: int, device: torch.device
) -> list[TokenScores]:
    """One right-padded batch of context + continuation rows."""
    ids, mask = right_padded(items, pad_id)
    width = ids.shape[1]
    # Logits at position t predict token t+1; the first needed position is min(len(ctx)) - 1.
    first = min(len(c) for c, _ in items) - 1
    kwargs = {"logits_to_keep": width - first} if supports_logits_to_keep(model) else {}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
    offset = width - logits.shape[1]  # 0 when every position was kept
    out = []
    for row, (ctx, cont) in enumerate(items):
        start = len(ctx) - 1 - offset
        out.append(scores_from_logits(logits[row, start : start + len(cont)], cont, stats[row]))
    return out


def can_share_prefix(model: Any) -> bool:
    """Shared-prefix scoring needs ``logits_to_keep`` and a KV cache that can be re-indexed."""
    if not supports_logits_to_keep(model):
        return False
    try:
        from transformers import DynamicCache
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return hasattr(DynamicCache, "batch_select_indices")


@torch.no_grad()
def score_shared(
    model: Any,
    groups: list[tuple[list[int], list[tuple[list[int], bool]]]],
    pad_id: int,
    device: torch.device,
) -> list[list[TokenScores]]:
    """Each group is one context and its continuations (with their vocab-stats flags).

    Prefixes are left-padded so every prompt ends at the same column, as in batched
    generation; position ids count real tokens only, so each row sees exactly the positions
    it would see alone.
    """
    ids, mask = left_padded([ctx for ctx, _ in groups], pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    prefix = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    first_logits = prefix.logits[:, -1]  # predicts each group's first continuation token
    rows = [(g, cont, flag) for g, (_, conts) in enumerate(groups) for cont, flag in conts]
    owner = torch.tensor([g for g, _, _ in rows], dtype=torch.long)
    cache = prefix.past_key_values
    cache.batch_select_indices(owner.to(device))  # repeat each prompt's KV per continuation
    cont_width = max(len(cont) for _, cont, _ in rows)
    cont_ids = torch.full((len(rows), cont_width), pad_id, dtype=torch.long)
    cont_mask = torch.zeros((len(rows), cont_width), dtype=torch.long)
    for r, (_, cont, _) in enumerate(rows):
        cont_ids[r, : len(cont)] = torch.tensor(cont)
        cont_mask[r, : len(cont)] = 1
    ctx_lengths = torch.tensor([len(ctx) for ctx, _ in groups], dtype=torch.long)[owner]
    cont_positions = ctx_lengths[:, None] + torch.arange(cont_width)[None, :]
    logits = model(
        input_ids=cont_ids.to(device),
        attention_mask=torch.cat([mask[owner], cont_mask], dim=1).to(device),
        position_ids=cont_positions.to(device),
        past_key_values=cache,
        use_cache=True,
    ).logits
    out: list[list[TokenScores]] = [[] for _ in groups]
    for r, (g, cont, flag) in enumerate(rows):
        row_logits = torch.cat([first_logits[g : g + 1], logits[r, : len(cont) - 1]], dim=0)
        out[g].append(scores_from_logits(row_logits, cont, flag))
    return out


def score_with_grad(
    model: Any, item: Item, vocab_stats: bool, device: torch.device, ghost: bool = False
) -> TokenScores:
    """One request with autograd: token scores plus the gradient norm of the mean NLL.

    GradNorm (Wang et al. 2024, arXiv 2402.17012; SPEC: "norm of the gradient of the NLL"):
    ``grad_norm`` is the L2 norm over all trainable parameters together; ``grad_norm_mean_param``
    is the mean of each parameter tensor's L2 norm, what open-unlearning / mimir compute.
    ``ghost`` takes the norms from activations and output gradients (``hf_gradnorm``) instead
    of forming every weight gradient; the same numbers up to float rounding. Gradients are
    cleared before and after, so the model's own state is untouched.
    """
    ctx, cont = item
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UnlearnBenchError("GradNorm needs trainable parameters; the model has none")
    ids = torch.tensor([ctx + cont], device=device)
    # The LM head (a fifth of SmolLM2's weights) runs, forward and backward, only on the
    # positions that predict the continuation; the prompt's rows add nothing to the loss.
    keep = {"logits_to_keep": len(cont) + 1} if supports_logits_to_keep(model) else {}

    def run_loss() -> tuple[torch.Tensor, torch.Tensor]:
        out = model(input_ids=ids, **keep).logits[0]
        start = len(ctx) - 1 - (ids.shape[1] - out.shape[0])  # 0 when the head was cut
        logits = out[start : start + len(cont)]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        target = torch.tensor(cont, device=device)
        return -logprobs.gather(-1, target.unsqueeze(-1)).mean(), logits

    squares = None
    if ghost:
        logits, squares = ghost_norms(model, run_loss)
    if squares is None or None in squares:  # direct: every weight gradient formed
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            nll, logits = run_loss()
            nll.backward()
        # float64 norms without a float64 copy of every gradient (the same numbers, less memory)
        norms = [
            torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64).item()
            for p in params
            if p.grad is not None
        ]
        model.zero_grad(set_to_none=True)
    else:
        norms = [math.sqrt(s) for s in squares]
    scores = scores_from_logits(logits.detach(), cont, vocab_stats)
    return TokenScores(
        scores.logprobs,
        scores.greedy,
        scores.vocab_means,
        scores.vocab_stds,
        math.sqrt(sum(n * n for n in norms)),
        sum(norms) / len(norms),
    )


def plan_shared_batches(
    groups: list[tuple[list[int], list[list[int]]]], token_budget: int
) -> list[list[int]]:
    """Indices of groups per forward pass: longest first, each batch within ``token_budget``.

    The cost of a batch is its continuation rows times the widest continuation (the second
    pass dominates); a group larger than the budget still gets a batch of its own.
    """
    order = sorted(
        range(len(groups)),
        key=lambda g: -(len(groups[g][0]) + max(len(c) for c in groups[g][1])),
    )
    batches: list[list[int]] = []
    rows, width = 0, 0
    for g in order:
        n, w = len(groups[g][1]), max(len(c) for c in groups[g][1])
        if batches and (rows + n) * max(width, w) <= token_budget:
            batches[-1].append(g)
            rows, width = rows + n, max(width, w)
        else:
            batches.append([g])
            rows, width = n, w
    return batches
