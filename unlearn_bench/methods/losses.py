"""Pure loss functions shared by the unlearning methods.

All take logits of shape (batch, seq, vocab) and labels of shape (batch, seq) with -100 on
positions that are not scored; the label at position t is predicted by the logits at t-1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the labels and the mask of scored tokens.

    Returns ``(logprobs, mask)``, both (batch, seq-1); logprobs are 0 where the mask is 0.
    """
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != -100
    safe_labels = shifted_labels.masked_fill(~mask, 0)
    logprobs = torch.log_softmax(shifted_logits, dim=-1)
    picked = logprobs.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of answer-token log-probs per sample, log p(y|x): shape (batch,)."""
    picked, _ = token_logprobs(logits, labels)
    return picked.sum(dim=-1)


def mean_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token NLL per sample: shape (batch,). A sample with no answer token is 0."""
    picked, mask = token_logprobs(logits, labels)
    counts = mask.sum(dim=-1).clamp(min=1)
    return -picked.sum(dim=-1) / counts


def batch_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NLL averaged over samples of the per-sample mean token NLL (the SPEC's "NLL")."""
    return mean_token_nll(logits, labels).mean()


def cross_entropy_all_tokens(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-level mean cross-entropy over all scored tokens of the batch (HF's convention)."""
    return F.cross_entropy(
        logits[:, :-1, :].float().reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=-100,
    )


# --- KL to a frozen reference --------------------------------------------------------------


def token_kl(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over scored tokens of KL(p_ref || p_theta), summed over the vocabulary.

    At every scored position t: sum_v p0(v) (log p0(v) - log p(v)) (Yao et al. 2023, the KL term
    on normal data). Tokens are averaged within a sample first, then the caller averages samples,
    the same convention as :func:`mean_token_nll`. Shape (batch,); a sample with no token is 0.
    """
    mask = labels[:, 1:] != -100
    ref_logp = torch.log_softmax(ref_logits[:, :-1, :].float(), dim=-1)
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)
    return (kl * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def all_position_cross_entropy(ref_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over every (row, position) of -sum_v p0(v) log p_theta(v): a scalar.

    The KL term of Yao et al.'s code (kevinyaobytedance/llm_unlearn ``utils.py``,
    ``compute_kl``): softmax of both models' logits at every position of the normal batch, prompt
    and padding included, no shift and no mask. It differs from KL(p0 || p_theta) by the entropy of
    p0, a constant in theta, so the gradient is the KL's. The code adds 1e-12 inside the log; this
    uses log_softmax instead, which differs only where p_theta < ~1e-12.
    """
    ref_p = torch.softmax(ref_logits.float(), dim=-1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(ref_p * logp).sum(dim=-1).mean()


def mean_token_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens of the token probability p(y_t | x, y_<t): shape (batch,)."""
    picked, mask = token_logprobs(logits, labels)
    return (picked.exp() * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


# --- Preference-style forget terms --------------------------------------------------------------


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024): -(2/beta) E[log sigmoid(-beta log(p_theta / p_ref))].

    ``logp`` and ``ref_logp`` are per-sample SEQUENCE log-probs (sum over answer tokens). With
    r = log p_theta - log p_ref the gradient is 2 sigmoid(beta r) dr: descent lowers p_theta like
    GA, but with a weight that vanishes once p_theta << p_ref (and GA is the beta -> 0 limit).
    """
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


def simnpo_loss(mean_nll: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """SimNPO (Fan et al. 2024), SPEC's notation: -(2/beta) E[log sigmoid(beta (l - delta))].

    ``mean_nll`` is l = -log p_theta(y|x) / |y|, the length-normalised NLL per sample. The paper
    writes -(2/beta) log sigmoid(-(beta/|y|) log p_theta(y|x) - gamma), i.e. gamma = beta * delta.
    """
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7) on per-sample sequence log-probs.

    -E[log sigmoid(beta ((log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))))].
    """
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def bounded_ascent_loss(nll: torch.Tensor, delta: float) -> torch.Tensor:
    """Bounded GA ("Unlearning with Control", Wang et al. 2024): E[(delta - NLL) 1{NLL < delta}].

    ``nll`` is the per-sample mean token NLL. A sample at or past the bound contributes 0 and,
    through the clamp, no gradient, so ascent stops per sample instead of diverging.
    """
    return torch.clamp(delta - nll, min=0.0).mean()


# --- f-divergences for FLAT ---------------------------------------------------------------------


class _LambertW(torch.autograd.Function):
    """Principal branch W0 of the Lambert W function for z > 0, with dW/dz = W / (z (1 + W))."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        zz = z.detach().double().clamp(min=1e-300)
        # Newton on w + log w = log z from w = log1p(z) >= W(z): the function is concave and
        # increasing, so iterates stay positive and converge without overflowing exp(w).
        w = torch.log1p(zz)
        for _ in range(40):
            w = w * (1.0 + torch.log(zz) - torch.log(w)) / (1.0 + w)
        w = w.to(z.dtype)
        ctx.save_for_backward(z, w)
        return w

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        z, w = ctx.saved_tensors
        return grad_out * w / (z * (1.0 + w))


def lambert_w(z: torch.Tensor) -> torch.Tensor:
    """Lambert W0(z) for z > 0 (differentiable)."""
    return _LambertW.apply(z)


def _jeffrey_conjugate(t: torch.Tensor) -> torch.Tensor:
    # f-GAN Table 6: f*(t) = W(e^(1-t)) + 1/W(e^(1-t)) + t - 2, with g_f(v) = v.
    w = lambert_w(torch.exp(1.0 - t))
    return w + 1.0 / w + t - 2.0


_LOG2 = math.log(2.0)

FDivPair = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]

F_DIVERGENCES: dict[str, FDivPair] = {
    # name: (g*(x), f*(g*(x))). g* is the f-GAN output activation g_f, f* the Fenchel conjugate
    # (Nowozin et al. 2016, Table 6); FLAT Table 2 lists the same pairs. Both members must be
    # increasing in x, or FLAT's loss would raise P_f and lower P_e.
    "kl": (lambda x: x, lambda x: torch.exp(x - 1.0)),
    # Named variants: f-GAN's own orientation where the SPEC's table gives no pair (reverse KL)
    # or one that is decreasing (squared Hellinger); see FLAT_SPEC_PAIRS_REFUSED.
    "reverse_kl_fgan": (lambda x: -torch.exp(-x), lambda x: x - 1.0),
    "jeffrey": (lambda x: x, _jeffrey_conjugate),
    # SPEC writes (1 - e^x, (1 - e^x)/e^x): f-GAN's pair with x -> -x, which is decreasing and
    # would unlearn backwards; f-GAN's own orientation is g = 1 - e^-x, f*(t) = t / (1 - t).
    "squared_hellinger_fgan": (lambda x: 1.0 - torch.exp(-x), lambda x: torch.exp(x) - 1.0),
    "pearson": (lambda x: x, lambda x: x * x / 4.0 + x),
    # f-GAN: g = 1 - e^-v, f*(t) = 2 - 2 sqrt(1 - t)  =>  f*(g(x)) = 2 - 2 e^(-x/2).
    "neyman": (lambda x: 1.0 - torch.exp(-x), lambda x: 2.0 - 2.0 * torch.exp(-x / 2.0)),
    "jensen_shannon": (lambda x: _LOG2 - F.softplus(-x), lambda x: F.softplus(x) - _LOG2),
    "total_variation": (lambda x: 0.5 * torch.tanh(x), lambda x: 0.5 * torch.tanh(x)),
}


FLAT_SPEC_PAIRS_REFUSED = {
    "squared_hellinger": "the SPEC's pair (1 - e^x, (1 - e^x)/e^x) is decreasing in x and would "
    "raise P_f; use the named variant squared_hellinger_fgan (f-GAN Table 6 orientation)",
    "reverse_kl": "the SPEC's table gives no pair; use the named variant reverse_kl_fgan "
    "(f-GAN Table 6: g = -e^-x, f*(g(x)) = x - 1)",
}
"""Divergence names whose SPEC form is not implemented, with the named variant to use instead."""


def mean_position_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Answer-token probabilities summed, over every (row, scored position) of the batch.

    FLAT's code averages over the whole batch x position grid with prompt and padding positions
    counting as zero, so a batch of short answers gets a smaller P than its per-row means. The
    grid is the (batch, seq - 1) positions that predict a label. Shape (1,).
    """
    picked, mask = token_logprobs(logits, labels)
    return ((picked.exp() * mask).sum() / mask.numel()).reshape(1)


def flat_loss(
    p_forget: torch.Tensor, p_template: torch.Tensor, divergence: str, form: str
) -> torch.Tensor:
    """FLAT (Wang et al. ICLR 2025, arXiv 2410.11143): L = -g*(P_e) + f*(g*(P_f)).

    ``p_forget`` / ``p_template`` are probabilities, shape (batch,) for ``form`` "per_sample"
    (g* and f* applied per sample then averaged: the paper's importance-weight reading) or (1,)
    for "batch_mean" (applied once to :func:`mean_position_prob`: the authors' code).
    """
    if divergence in FLAT_SPEC_PAIRS_REFUSED:
        raise ValueError(f"FLAT divergence {divergence!r}: {FLAT_SPEC_PAIRS_REFUSED[divergence]}")
    if divergence not in F_DIVERGENCES:
        raise ValueError(f"unknown f-divergence {divergence!r}; known: {sorted(F_DIVERGENCES)}")
    if form not in ("per_sample", "batch_mean"):
        raise ValueError(f"FLAT form must be 'per_sample' or 'batch_mean', got {form!r}")
    g, f_of_g = F_DIVERGENCES[divergence]
    return (-g(p_template) + f_of_g(p_forget)).mean()


# --- Representation terms (RMU) -----------------------------------------------------------------


def masked_sq_distance(
    hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch's valid positions of ||hidden_t - target_t||_2^2 (RMU, Li et al. 2024).

    ``hidden`` (batch, seq, dim); ``target`` broadcastable to it; ``mask`` (batch, seq).
    """
    sq = (hidden.float() - target.float()).pow(2).sum(dim=-1)
    weights = mask.to(sq.dtype)
    return (sq * weights).sum() / weights.sum().clamp(min=1)


# --- Per-token targets and weights (UNDIAL, CE-U, WGA, SatImp, PDU) -----------------------------


def _shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at t-1 with the label they predict at t; labels -100 become 0 (masked by caller)."""
    shifted_labels = labels[:, 1:]
    return logits[:, :-1, :].float(), shifted_labels.masked_fill(shifted_labels == -100, 0)


def _per_sample_mean(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of (batch, seq-1) ``values`` over each sample's scored tokens; 0 with none."""
    mask = labels[:, 1:] != -100
    return (values * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


def soft_target_cross_entropy(
    logits: torch.Tensor, target_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Per-sample mean over scored tokens of -sum_v q(v) log p_theta(v), q = softmax(target).

    ``target_logits`` are (batch, seq-1, vocab), aligned with the shifted logits and treated as
    constants (detached): UNDIAL and CE-U both distil towards a fixed target distribution.
    Shape (batch,).
    """
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    q = torch.softmax(target_logits.detach().float(), dim=-1)
    # q is exactly 0 where a target logit is -inf (CE-U); 0 * finite log p stays 0.
    ce = -(q * logp).sum(dim=-1)
    return _per_sample_mean(ce, labels)


def undial_target(ref_logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """UNDIAL target logits (Dong et al. 2024): z0 - beta * onehot(label), shape (b, s-1, V)."""
    z0, safe = _shifted(ref_logits.detach(), labels)
    return z0 - beta * F.one_hot(safe, z0.shape[-1]).to(z0.dtype)


def ceu_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE-U's target logits (arXiv 2503.01224): the model's own detached logits, label at -inf."""
    z, safe = _shifted(logits.detach(), labels)
    return z.scatter(-1, safe.unsqueeze(-1), float("-inf"))


def weighted_ascent_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta1: float, beta2: float
) -> torch.Tensor:
    """Per-sample mean over scored tokens of w_t log p_t, w_t = p_t^beta1 (1 - p_t)^beta2 detached.

    Minimising it lowers log p_t (gradient ascent on the NLL) with each token weighted: WGA is
    beta2 = 0 (Wang et al. 2025), SatImp the general form (Yang et al. 2025). Shape (batch,).
    """
    picked, _ = token_logprobs(logits, labels)
    p = picked.detach().exp()
    weight = p.pow(beta1) * (1.0 - p).clamp(min=0.0).pow(beta2)
    return _per_sample_mean(weight * picked, labels)


def logit_margin_flattening(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PDU's forget loss (arXiv 2506.05314): (max_v z_v - mean_v z_v)^2 per scored position.

    Zero exactly when all logits at a position are equal (the uniform distribution). Per-sample
    mean over scored (answer) tokens; shape (batch,).
    """
    z = logits[:, :-1, :].float()
    margin = z.max(dim=-1).values - z.mean(dim=-1)
    return _per_sample_mean(margin.pow(2), labels)
