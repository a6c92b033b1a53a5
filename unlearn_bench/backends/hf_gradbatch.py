"""Per-item gradient norms for several items from one forward and one backward pass.

``hf_gradnorm`` takes one item's squared norm of every parameter tensor's gradient from the
activations A and output gradients G of each linear layer (||dL/dW||^2 = <A A^T, G G^T>). With B
items in one right-padded batch and L = sum_i L_i, each L_i the item's own mean NLL exactly as
the one-item path computes it, row i's activation gradients are dL_i/d(activations of row i):
attention masks and the causal order keep rows apart, so no L_j (j != i) depends on row i.
Hence item i's squared norm of a linear weight is <A_i A_i^T, G_i G_i^T> over its own
positions, its embedding rows are the sums of its own dL/de_t, and a tied head's cross term is
taken per row too.

Right padding keeps every real token at the position and with the attention it has alone:
pads come after the row's tokens, so no real token attends to them, and the default position
ids (0, 1, ...) are the one-item ones. The pad positions' output gradients are zero (nothing in
the loss depends on them); A and G are also masked there, so they add exactly nothing.

Norm weights (RMSNorm's w, y_t = w * xhat_t) are not linear layers: a summed backward would
give sum_i dL_i/dw, not each item's. Each item's is recomputed exactly instead: the norm module
is run again on the row's recorded input with the row's recorded output gradient, and autograd
gives that row's sum_t (dy_t/dw)^T g_t. These modules are small (a few thousand weights).

Same quantities as ``hf_scoring.score_with_grad``, another order of summation; equal up to
float rounding. Only for ``hf_gradnorm.GHOST_MODEL_TYPES``; the HF backend checks it against
the direct path on a model's first gradient batch before relying on it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from unlearn_bench.backends.base import TokenScores
from unlearn_bench.backends.hf_gradnorm import GradRecorder, backward_without, ghost_ids
from unlearn_bench.backends.hf_scoring import (
    Item,
    right_padded,
    scores_from_logits,
    supports_logits_to_keep,
)


class _OwnerRecorder:
    """Input and output gradient of each module owning a parameter outside the ghost set."""

    def __init__(self, owners: list[nn.Module]) -> None:
        self.inputs: dict[nn.Module, torch.Tensor] = {}
        self.out_grads: dict[nn.Module, torch.Tensor] = {}
        self.calls: dict[nn.Module, int] = {}
        self.handles = [m.register_forward_hook(self._record) for m in owners]

    def _record(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.calls[module] = self.calls.get(module, 0) + 1
        if len(args) != 1 or not isinstance(output, torch.Tensor):
            self.calls[module] += 1  # not a one-tensor module: marked unusable below
            return
        self.inputs[module] = args[0].detach()

        def keep(grad: torch.Tensor) -> None:
            self.out_grads[module] = grad.detach()

        if output.requires_grad:
            output.register_hook(keep)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _owners(model: nn.Module, params: list[nn.Parameter]) -> dict[nn.Module, list[nn.Parameter]]:
    """The module holding each of ``params`` directly."""
    wanted = {id(p) for p in params}
    found: dict[nn.Module, list[nn.Parameter]] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in wanted:
                found.setdefault(module, []).append(p)
    return found


def _rows(t: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T', ...] -> [B, T', features] in float32; positions outside ``keep`` set to zero.

    A module may see only the last T' positions of the batch (the LM head under
    ``logits_to_keep``): ``keep`` [B, T] is cut to them. Output gradients are masked (they are
    zero at padding anyway); inputs need not be: padding's activations are finite (each pad
    attends to its row's tokens) and meet a zero gradient in every product.
    """
    t = t.reshape(t.shape[0], t.shape[1], -1).float()
    if keep is None:
        return t
    return t * keep[:, keep.shape[1] - t.shape[1] :, None].to(t.dtype)


def _add(squares: dict[int, torch.Tensor], key: int, value: torch.Tensor) -> None:
    """``squares[key] += value``, starting from zero (a tied weight gets two terms)."""
    squares[key] = value if key not in squares else squares[key] + value


def _compact(a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's positions with a nonzero output gradient moved to the front, the rest cut.

    A position whose G row is zero adds nothing to <A A^T, G G^T>, so this changes no number;
    it keeps the LM head's Gram matrices to the positions that predict the continuation (the
    prompt's positions are in the batch only because other rows need them).
    """
    support = g.ne(0).any(-1)  # [B, T']
    counts = support.sum(1)
    width = int(counts.max()) if counts.numel() else 0
    if width * 10 >= support.shape[1] * 9:  # little to cut: not worth the copies
        return a, g
    order = torch.argsort((~support).to(torch.int8), dim=1, stable=True)[:, :width]
    a = a.gather(1, order[..., None].expand(-1, -1, a.shape[-1]))
    g = g.gather(1, order[..., None].expand(-1, -1, g.shape[-1]))
    valid = (torch.arange(width, device=g.device)[None, :] < counts[:, None]).to(g.dtype)
    return a * valid[..., None], g * valid[..., None]


def _batched_square(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per row b, ||G_b^T A_b||_F^2 in float64, the cheaper of two exact ways.

    <A A^T, G G^T> costs T^2 (in + out) per row; forming G^T A costs T in out. The Gram way
    (float32 Gram matrices, as one item's path) wins for short rows; for rows longer than
    in out / (in + out) (144 tokens for SmolLM2's key and value projections) the product does.
    """
    t, n_in, n_out = a.shape[1], a.shape[2], g.shape[2]
    if t * (n_in + n_out) <= n_in * n_out:
        gram = (a @ a.transpose(1, 2)).double().mul_((g @ g.transpose(1, 2)).double())
        return gram.sum((1, 2))
    return (g.transpose(1, 2) @ a).double().pow(2).sum((1, 2))


def batch_ghost_norms(
    model: nn.Module, run_loss: Any, keep: torch.Tensor
) -> tuple[Any, list[list[float]] | None]:
    """``run_loss()`` (forward, returns (summed loss, extra)) differentiated once.

    ``keep`` [B, T] marks each row's real tokens. Returns ``extra`` and, per row, the squared
    gradient norm of every trainable parameter tensor (``model.parameters()`` order) of that
    row's own loss; None instead of the list when a module ran more than once or a parameter's
    module is not a one-tensor module (the caller then uses another path).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    ghost = ghost_ids(model, params)
    owners = _owners(model, [p for p in params if id(p) not in ghost])
    recorder, others = GradRecorder(model, ghost), _OwnerRecorder(list(owners))
    model.zero_grad(set_to_none=True)
    # No weight gradient at all (the embedding output is the leaf), so every parameter is out.
    extra = backward_without(run_loss, params, [recorder, others])
    calls = list(recorder.calls.values()) + list(others.calls.values())
    if any(n != 1 for n in calls):
        return extra, None
    squares = _ghost_squares(recorder, ghost, keep)
    squares.update(_owner_squares(owners, others, keep))
    rows = keep.shape[0]
    zero = torch.zeros(rows, dtype=torch.float64)
    per_param = [squares.get(id(p), zero).tolist() for p in params]
    return extra, [[column[b] for column in per_param] for b in range(rows)]


def _ghost_squares(
    rec: GradRecorder, ghost: set[int], keep: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Per-row squared norms [B] of each linear and embedding parameter (by id)."""
    squares: dict[int, torch.Tensor] = {}
    heads: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for module, a in rec.inputs.items():
        g = rec.out_grads.get(module)
        if g is None:  # the output did not reach the loss: zero gradient
            continue
        a3, g3 = _compact(_rows(a), _rows(g, keep))
        weight = id(module.weight)
        _add(squares, weight, _batched_square(a3, g3))
        heads[weight] = (a3, g3)
        bias = getattr(module, "bias", None)
        if bias is not None and id(bias) in ghost:
            squares[id(bias)] = g3.double().sum(1).pow(2).sum(-1)
    for module, (ids, leaf) in rec.embed_out.items():
        if leaf.grad is None:
            continue
        weight = id(module.weight)
        d3 = _rows(leaf.grad, keep)
        per_row = []
        for b in range(keep.shape[0]):
            real = keep[b].bool()
            tokens, where = torch.unique(ids[b][real], return_inverse=True)
            rows = torch.zeros(len(tokens), d3.shape[-1], dtype=torch.float64, device=d3.device)
            rows.index_add_(0, where, d3[b][real].double())  # each token's row of dL_b/dE
            pad = getattr(module, "padding_idx", None)
            if pad is not None:  # nn.Embedding never updates its padding row
                rows[tokens == pad] = 0.0
            total = rows.pow(2).sum()
            if weight in heads:  # tied: 2 <G^T H, S>, S nonzero only on the row's tokens
                h, g = heads[weight][0][b], heads[weight][1][b]
                total = total + 2.0 * (g[:, tokens].double() * (h.double() @ rows.T)).sum()
            per_row.append(total)
        _add(squares, weight, torch.stack(per_row))
    return squares


def _owner_squares(
    owners: dict[nn.Module, list[nn.Parameter]], rec: _OwnerRecorder, keep: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Per-row squared norms [B] of the other parameters, each row's gradient recomputed."""
    squares: dict[int, torch.Tensor] = {}
    for module, owned in owners.items():
        x, g = rec.inputs.get(module), rec.out_grads.get(module)
        if x is None or g is None:  # not run, or its output did not reach the loss: zero
            continue
        per_row = []
        for b in range(keep.shape[0]):
            n = int(keep[b].sum())  # right padding: the row's tokens come first
            with torch.enable_grad():
                out = module(x[b : b + 1, :n])
                grads = torch.autograd.grad(
                    out, owned, grad_outputs=g[b : b + 1, :n], allow_unused=True
                )
            per_row.append([0.0 if gr is None else float(gr.double().pow(2).sum()) for gr in grads])
        for k, p in enumerate(owned):
            squares[id(p)] = torch.tensor([row[k] for row in per_row], dtype=torch.float64)
    return squares


def score_batch_with_grad(
    model: Any, items: list[Item], stats: list[bool], pad_id: int, device: torch.device
) -> list[TokenScores] | None:
    """Token scores and both gradient norms of each item's mean NLL, from one batch.

    The same quantities as ``hf_scoring.score_with_grad`` per item (``grad_norm``: L2 over all
    trainable parameters; ``grad_norm_mean_param``: mean of the tensors' L2 norms). None when
    the batched path cannot cover this model (see ``batch_ghost_norms``).
    """
    ids, mask = right_padded(items, pad_id)
    width = ids.shape[1]
    first = min(len(c) for c, _ in items) - 1  # the first position whose logits are needed
    kwargs = {"logits_to_keep": width - first} if supports_logits_to_keep(model) else {}

    def run_loss() -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
        offset = width - out.shape[1]
        # One log-softmax and one gather for the batch: per-row slices of the logits would each
        # send a zero-filled gradient of the whole logits tensor back through autograd.
        targets = torch.zeros(out.shape[:2], dtype=torch.long)
        weights = torch.zeros(out.shape[:2], dtype=torch.float32)
        kept = []
        for row, (ctx, cont) in enumerate(items):
            start = len(ctx) - 1 - offset
            targets[row, start : start + len(cont)] = torch.tensor(cont)
            weights[row, start : start + len(cont)] = 1.0 / len(cont)  # the item's own mean
            kept.append(out[row, start : start + len(cont)])
        logprobs = torch.log_softmax(out.float(), dim=-1)
        picked = logprobs.gather(-1, targets.to(out.device).unsqueeze(-1)).squeeze(-1)
        total = -(picked * weights.to(out.device)).sum()
        return total, kept

    logits, squares = batch_ghost_norms(model, run_loss, mask.to(device))
    if squares is None:
        return None
    out = []
    for row, (_, cont) in enumerate(items):
        scores = scores_from_logits(logits[row].detach(), cont, stats[row])
        norms = [math.sqrt(max(s, 0.0)) for s in squares[row]]
        out.append(
            TokenScores(
                scores.logprobs,
                scores.greedy,
                scores.vocab_means,
                scores.vocab_stds,
                math.sqrt(sum(squares[row])),
                sum(norms) / len(norms),
            )
        )
    return out


def plan_grad_batches(items: list[Item], token_budget: int, max_rows: int) -> list[list[int]]:
    """Indices per batch, longest first; rows x widest row within ``token_budget``."""
    order = sorted(range(len(items)), key=lambda i: -(len(items[i][0]) + len(items[i][1])))
    batches: list[list[int]] = []
    width = 0  # the current batch's first (widest) row
    for i in order:
        rows = len(batches[-1]) if batches else 0
        if batches and rows < max_rows and (rows + 1) * width <= token_budget:
            batches[-1].append(i)
        else:
            batches.append([i])
            width = len(items[i][0]) + len(items[i][1])
    return batches
