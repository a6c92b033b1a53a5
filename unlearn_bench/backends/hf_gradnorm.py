"""Per-parameter gradient norms of one sequence's loss without forming the weight gradients.

GradNorm (Wang et al. 2024) needs ||dL/dW|| for every parameter tensor W. For a linear layer
y_t = W a_t, dL/dW = sum_t g_t a_t^T (g_t = dL/dy_t), so

    ||dL/dW||^2 = sum_{s,t} (a_s . a_t) (g_s . g_t) = <A A^T, G G^T>,

which costs T^2 (in + out) instead of T in out for T positions: for SmolLM2-135M and a TOFU item
(T ~ 100) about a quarter of the weight-gradient work, which is a third of a backward pass. The
backward pass then computes only the activation gradients: the weights of the linear and
embedding layers are frozen for it, and the embedding output is the leaf that receives dL/de.
An embedding row's gradient is the sum of dL/de_t over the positions holding that token (zero
for the padding row, as nn.Embedding defines it: chat templates use the pad token); a tied
LM head and embedding add the cross term 2 <G^T H, S> to their shared matrix's squared norm.
Parameters that are neither (norm weights) get ordinary gradients.

This is the same quantity as ``hf_scoring.score_with_grad`` computes, in another order of
summation (float32 Gram matrices, float64 sums): equal up to float rounding. It runs only for
model types known to use their linear and embedding modules once each and their weights nowhere
else (``GHOST_MODEL_TYPES``), and the HF backend checks it against the direct path on the first
gradient request of every model before relying on it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Architectures whose every use of a Linear/Embedding weight goes through its module, once per
# forward pass (the tied LM head is an nn.Linear sharing the embedding's Parameter).
GHOST_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def supports_ghost(model: Any) -> bool:
    """Whether ``ghost_norms`` may be used for ``model``."""
    return getattr(getattr(model, "config", None), "model_type", None) in GHOST_MODEL_TYPES


class GradRecorder:
    """Forward hooks that keep each linear layer's input and output gradient for one pass."""

    def __init__(self, model: nn.Module, ghost: set[int]) -> None:
        self.inputs: dict[nn.Module, torch.Tensor] = {}
        self.out_grads: dict[nn.Module, torch.Tensor] = {}
        self.calls: dict[nn.Module, int] = {}
        self.embed_out: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self.handles = []
        for module in model.modules():
            if isinstance(module, nn.Linear) and id(module.weight) in ghost:
                self.handles.append(module.register_forward_hook(self._linear))
            elif isinstance(module, nn.Embedding) and id(module.weight) in ghost:
                self.handles.append(module.register_forward_hook(self._embedding))

    def _count(self, module: nn.Module) -> None:
        self.calls[module] = self.calls.get(module, 0) + 1

    def _linear(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._count(module)
        self.inputs[module] = args[0].detach()

        def keep(grad: torch.Tensor) -> None:
            self.out_grads[module] = grad.detach()

        output.register_hook(keep)

    def _embedding(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        self._count(module)
        leaf = output.detach().requires_grad_(True)  # receives dL/de in the backward pass
        self.embed_out[module] = (args[0].detach(), leaf)
        return leaf

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self.handles:
            handle.remove()


def _gram_inner(a: torch.Tensor, g: torch.Tensor) -> float:
    """<A A^T, G G^T> for A [T, in], G [T, out]: ||G^T A||_F^2 without forming G^T A."""
    return float((a @ a.T).double().mul_((g @ g.T).double()).sum())


def ghost_ids(model: nn.Module, params: list[nn.Parameter]) -> set[int]:
    """Ids of those ``params`` that are linear weights and biases or embedding weights."""
    ghost = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    ghost |= {
        id(m.bias) for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None
    }
    return ghost & {id(p) for p in params}


def backward_without(run_loss: Any, frozen: list[nn.Parameter], hooks: list[Any]) -> Any:
    """``run_loss()``'s loss differentiated with ``frozen`` out of autograd; its extra.

    The parameters are restored and the recorders' hooks removed even if the pass fails.
    """
    try:
        for p in frozen:
            p.requires_grad_(False)
        with torch.enable_grad():
            loss, extra = run_loss()
            loss.backward()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for recorder in hooks:
            recorder.remove()
    return extra


def ghost_norms(model: nn.Module, run_loss: Any) -> tuple[Any, list[float]]:
    """``run_loss()`` (forward, returns (loss, extra)) differentiated; per-tensor squared norms.

    Returns ``extra`` and the squared gradient norm of every trainable parameter tensor, in
    ``model.parameters()`` order; None in that list marks a tensor this path could not cover
    (a module called more than once), so the caller uses the direct path instead.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    ghost = ghost_ids(model, params)
    recorder = GradRecorder(model, ghost)
    model.zero_grad(set_to_none=True)
    extra = backward_without(run_loss, [p for p in params if id(p) in ghost], [recorder])
    if any(n != 1 for n in recorder.calls.values()):
        model.zero_grad(set_to_none=True)
        return extra, [None] * len(params)  # type: ignore[list-item]
    squares = _squared_norms(model, recorder, ghost)
    out = []
    for p in params:
        if id(p) in ghost:
            out.append(squares.get(id(p), 0.0))
        else:
            grad = p.grad
            out.append(0.0 if grad is None else float(grad.double().pow(2).sum()))
    model.zero_grad(set_to_none=True)
    return extra, out


def _squared_norms(model: nn.Module, rec: GradRecorder, ghost: set[int]) -> dict[int, float]:
    """Squared norm per ghost parameter (by id), tied LM head and embedding together."""
    squares: dict[int, float] = {}
    heads: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # weight id -> (H, G) of a Linear
    for module, a in rec.inputs.items():
        g = rec.out_grads.get(module)
        if g is None:  # the output did not reach the loss: zero gradient
            continue
        a2, g2 = a.reshape(-1, a.shape[-1]).float(), g.reshape(-1, g.shape[-1]).float()
        squares[id(module.weight)] = squares.get(id(module.weight), 0.0) + _gram_inner(a2, g2)
        heads[id(module.weight)] = (a2, g2)
        bias = getattr(module, "bias", None)
        if bias is not None and id(bias) in ghost:
            squares[id(bias)] = float(g2.double().sum(0).pow(2).sum())
    for module, (ids, leaf) in rec.embed_out.items():
        if leaf.grad is None:
            continue
        d = leaf.grad.reshape(-1, leaf.shape[-1])
        tokens, where = torch.unique(ids.reshape(-1), return_inverse=True)
        rows = torch.zeros(len(tokens), d.shape[-1], dtype=torch.float64, device=d.device)
        rows.index_add_(0, where, d.double())  # each token's row of dL/dE
        pad = getattr(module, "padding_idx", None)
        if pad is not None:  # nn.Embedding never updates its padding row: its gradient is 0
            rows[tokens == pad] = 0.0
        weight = id(module.weight)
        squares[weight] = squares.get(weight, 0.0) + float(rows.pow(2).sum())
        if weight in heads:  # tied: 2 <G^T H, S> with S nonzero only on the tokens' rows
            h, g = heads[weight]
            cross = (g[:, tokens].double() * (h.double() @ rows.T)).sum()
            squares[weight] += 2.0 * float(cross)
    return squares
