"""Collapse detection: an unlearned model that says nothing at all is marked, never ranked.

A learning rate far too high can drive a model to (near) uniform output while its weights stay
finite: the NaN guard passes, the forget set's truth ratios all sit near 1, and TOFU's forget
quality reads 1.0, the best possible. Such a model has not unlearned; it has stopped working.
Three pure detectors, each with a named threshold recorded in the run record:

* **Training** (:func:`training_collapse`), fed by the unlearning loop's log. Every step logs
  the model's own per-token NLL of the forget answers (``collapse/forget_nll``), the mean KL
  of its next-token distributions from uniform (``collapse/forget_kl_uniform`` = ln|V| - H(p),
  so 0 exactly at uniform) and ln|V| (``collapse/ln_vocab``). These are the model's, not the
  method's loss, so one rule serves every method whatever the sign of its loss: gradient
  ascent's loss is -NLL, NPO's a log-sigmoid, RMU's an activation distance. A uniform model has
  NLL = ln|V| exactly, for any labels. Collapsed: the last logged step sits within
  ``UNIFORM_NLL_NATS`` of ln|V| **and** within ``UNIFORM_KL_NATS`` of uniform, having started
  outside that band (a start model that is itself near uniform, like an untrained random model,
  has nothing to collapse from). The KL condition keeps out a model whose forget NLL merely
  passes through ln|V| on its way up while it still predicts confidently (gradient ascent does
  that, and the authors keep training past it).
* **Generations** (:func:`generation_collapse`): the share of greedy generations that are empty
  or one unit repeated (:func:`one_token_or_empty`) rose by ``DEGENERATE_SHARE_RISE`` or more
  over the target model's share on the same items.
* **Retain probability** (:func:`retain_collapse`): the unlearned model's retain-set answer
  probability fell below ``RETAIN_PROBABILITY_FLOOR`` x the target model's.

Each detector returns a :class:`Collapse` (reason, where, value, threshold) or None;
:func:`mark_collapse` writes the verdict into a run record's header (``collapsed``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from unlearn_bench.methods.base import TokenBatch
    from unlearn_bench.runs import RunRecord

# Why 0.1 nats for both training bands: ln|V| - H(p) is exactly KL(p || uniform), and by
# Pinsker's inequality a distribution within 0.1 nats of uniform is within total variation
# sqrt(0.1 / 2) ~= 0.22 of it, so no token can carry more than ~0.22 + 1/|V| of the mass: such
# a model cannot answer anything. A working LM sits nats away (a perfectly confident one is
# ln|V| away: 10.8 nats for SmolLM2's 49,152 tokens, 5.95 for the tests' 384). The NLL band is
# the issue's own symptom, "the loss pinned at ln|V|", with the same width.
UNIFORM_NLL_NATS = 0.1
UNIFORM_KL_NATS = 0.1
# Why a rise of 0.5: at least half of the items the target answered with some content now get
# nothing or one token over and over. A healthy model loops on a few items under greedy
# decoding; a collapsed one loops on all. Measured as a rise over the target's own share so a
# target that already loops (a tiny random test model) does not mark its unlearned copies.
DEGENERATE_SHARE_RISE = 0.5
# Why 0.05: retain probability is the geometric-mean per-token answer probability, so 1/20 of
# the target's means every retain answer token lost ln 20 ~= 3 nats. Unlearning that kept the
# retain set's knowledge moves it little (the controls' default floor is far tighter); a model
# 20x worse on what it was meant to keep has been broken, not unlearned.
RETAIN_PROBABILITY_FLOOR = 0.05

# The training log's keys for the three per-step numbers (train/stages.py writes them).
NLL_KEY, KL_KEY, LN_VOCAB_KEY = (
    "collapse/forget_nll", "collapse/forget_kl_uniform", "collapse/ln_vocab",
)  # fmt: skip
# One unit of 1-30 characters (a token: the longest in common vocabularies are shorter) repeated
# at least 3 times and making up the whole text once whitespace is removed.
_ONE_UNIT = re.compile(r"(.{1,30}?)\1{2,}", re.DOTALL)


@dataclass(frozen=True)
class Collapse:
    """Why a model counts as collapsed: which detector, where, the value and its threshold."""

    reason: str  # "uniform_output", "degenerate_generations" or "retain_probability_floor"
    where: str  # "step N" (training) or the metric it was read from
    value: float
    threshold: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record's ``collapsed`` entry."""
        return asdict(self)


def thresholds() -> dict[str, float]:
    """Every threshold by name, as the run record stores them beside the verdict."""
    return {
        "uniform_nll_nats": UNIFORM_NLL_NATS,
        "uniform_kl_nats": UNIFORM_KL_NATS,
        "degenerate_share_rise": DEGENERATE_SHARE_RISE,
        "retain_probability_floor": RETAIN_PROBABILITY_FLOOR,
    }


def uniformity_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per-token NLL of the labels, mean KL from uniform, and ln|V|, over the scored tokens.

    ``labels`` use -100 on unscored positions; the label at t is predicted by the logits at t-1
    (as in ``methods.losses``). KL(p || uniform) = ln|V| - H(p), averaged over scored positions.
    """
    import torch

    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    n = mask.sum().clamp(min=1)
    nll = -logp.gather(-1, target.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    ln_vocab = math.log(logits.shape[-1])
    return {
        NLL_KEY: float((nll * mask).sum() / n),
        KL_KEY: float(((ln_vocab - entropy) * mask).sum() / n),
        LN_VOCAB_KEY: ln_vocab,
    }


def watch_forget(model: Any, part: TokenBatch) -> dict[str, float]:
    """:func:`uniformity_stats` of ``model`` on a forget batch: one forward pass, no gradients.

    The unlearning loop calls it on the weights each step's loss sees.
    """
    import torch

    with torch.no_grad():
        logits = model(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
        return uniformity_stats(logits, part.labels)


def _near_uniform(row: dict[str, Any]) -> bool:
    return (
        abs(row[NLL_KEY] - row[LN_VOCAB_KEY]) <= UNIFORM_NLL_NATS and row[KL_KEY] <= UNIFORM_KL_NATS
    )


def training_collapse(log_rows: Iterable[dict[str, Any]]) -> Collapse | None:
    """Uniform output at the end of training (module docstring); None when not collapsed.

    ``where`` names the first step of the final stretch of near-uniform steps.
    """
    rows = [r for r in log_rows if NLL_KEY in r and KL_KEY in r and LN_VOCAB_KEY in r]
    if not rows or not _near_uniform(rows[-1]) or _near_uniform(rows[0]):
        return None
    first = len(rows) - 1
    while first > 0 and _near_uniform(rows[first - 1]):
        first -= 1
    last = rows[-1]
    return Collapse(
        reason="uniform_output",
        where=f"step {rows[first].get('step', first + 1)}",
        value=last[NLL_KEY],
        threshold=last[LN_VOCAB_KEY],
        detail=(
            f"forget NLL {last[NLL_KEY]:.4f} within {UNIFORM_NLL_NATS} of ln|V| = "
            f"{last[LN_VOCAB_KEY]:.4f} and KL from uniform {last[KL_KEY]:.4f} <= "
            f"{UNIFORM_KL_NATS} from that step to the last ({last.get('step')})"
        ),
    )


def one_token_or_empty(text: str) -> bool:
    """True when ``text`` has no letter or digit, or is one unit repeated 3+ times and nothing else.

    Whitespace is ignored, so "the the the" and "NoNoNoNo" count; a short real answer ("No",
    "1990", "A") never does, as it is not repeated.
    """
    squeezed = "".join(text.split())
    if not any(ch.isalnum() for ch in squeezed):
        return True
    return _ONE_UNIT.fullmatch(squeezed) is not None


def degenerate_share(texts: list[str]) -> float:
    """Share of ``texts`` that are empty or one repeated unit (:func:`one_token_or_empty`)."""
    return sum(one_token_or_empty(t) for t in texts) / len(texts) if texts else 0.0


def generation_collapse(texts: list[str], target_texts: list[str]) -> Collapse | None:
    """Degenerate generations rose by ``DEGENERATE_SHARE_RISE`` over the target's; else None."""
    if not texts or not target_texts:
        return None
    share, base = degenerate_share(texts), degenerate_share(target_texts)
    if share - base < DEGENERATE_SHARE_RISE:
        return None
    return Collapse(
        reason="degenerate_generations",
        where="generations",
        value=share,
        threshold=base + DEGENERATE_SHARE_RISE,
        detail=(
            f"{share:.2%} of {len(texts)} generations are empty or one repeated token "
            f"(target model: {base:.2%}; marked at a rise of {DEGENERATE_SHARE_RISE:.0%})"
        ),
    )


def retain_collapse(metric: str, value: float | None, target: float | None) -> Collapse | None:
    """Retain probability below ``RETAIN_PROBABILITY_FLOOR`` x the target's; else None."""
    if value is None or target is None or not target > 0 or math.isnan(value):
        return None
    floor = RETAIN_PROBABILITY_FLOOR * target
    if value >= floor:
        return None
    return Collapse(
        reason="retain_probability_floor",
        where=metric,
        value=value,
        threshold=floor,
        detail=(f"{metric} {value:.4g} < {RETAIN_PROBABILITY_FLOOR} x the target's {target:.4g}"),
    )


# The result whose floor marks collapse: the task's retain-set answer probability (TOFU-style
# tasks); a task without it (MUSE, the LLMU scenarios) is checked by the other two detectors.
RETAIN_METRIC = "retain/probability"


def _generations(record: RunRecord, task: str) -> dict[tuple[Any, Any], str]:
    """Greedy generations by (eval set, item index)."""
    return {
        (s.get("eval_set"), s.get("index")): s["obs"]["generation"]
        for s in record.read_samples(task)
        if isinstance((s.get("obs") or {}).get("generation"), str)
    }


def _value(header: dict[str, Any], metric: str) -> float | None:
    value = ((header.get("set_results") or {}).get(metric) or {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def detect_collapse(
    record: RunRecord, target: RunRecord | None, task: str, train_log: Path | None = None
) -> list[Collapse]:
    """Every detector's finding for an evaluated unlearned run (empty: not collapsed).

    Reads the training log (``train_log``, else the record's copied ``train_log.jsonl``), the
    run's stored generations and retain probability,
    and the target model's record for the two relative detectors (matched by eval set and item,
    so both sides count the same items).
    """
    from unlearn_bench.paths import read_jsonl

    found: list[Collapse | None] = []
    log = train_log or record.root / "train_log.jsonl"
    if log.is_file():
        found.append(training_collapse(read_jsonl(log)))
    if target is not None:
        ours, theirs = _generations(record, task), _generations(target, task)
        both = sorted(set(ours) & set(theirs), key=str)
        found.append(generation_collapse([ours[k] for k in both], [theirs[k] for k in both]))
        header, target_header = record.header, target.header
        found.append(
            retain_collapse(
                RETAIN_METRIC, _value(header, RETAIN_METRIC), _value(target_header, RETAIN_METRIC)
            )
        )
    return [c for c in found if c is not None]


def mark_collapse(
    record: RunRecord, target: RunRecord | None, task: str, train_log: Path | None = None
) -> Collapse | None:
    """Write ``collapsed`` (the first finding, or null) and ``collapse_check`` into the header.

    ``collapse_check`` holds every threshold and every finding, so a reader sees what was
    checked even when nothing was found.
    """
    findings = detect_collapse(record, target, task, train_log)
    first = findings[0] if findings else None
    record.update_header(
        collapsed=first.to_dict() if first else None,
        collapse_check={
            "thresholds": thresholds(),
            "findings": [c.to_dict() for c in findings],
            "target": target.run_id if target is not None else None,
        },
    )
    return first
