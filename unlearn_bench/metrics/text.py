"""Text-overlap metrics over generated text: ROUGE-L via the ``rouge_score`` library.

TOFU reports ROUGE-L recall of the greedy answer against the reference answer (Maini et al.
2024) with Google's rouge-score and the Porter stemmer on, which we reuse rather than
reimplement so the numbers match the published ones token for token. MedForget's ROUGE-L F1
uses the same stemmed scorer. MUSE is different: its evaluation code builds the scorer with
``use_stemmer=False``, and our MUSE metrics follow it (``metrics.muse``); open-unlearning's MUSE
evaluation stems, so its published MUSE ROUGE is not tokenised like MUSE's or ours.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _rouge_l_scorer() -> Any:
    """Build the RougeScorer once: constructing it loads the stemmer, which is not free."""
    from rouge_score import rouge_scorer  # imported here so `unlearn-bench --help` stays fast

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def _rouge_l(prediction: str, reference: str) -> Any:
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise ValueError("ROUGE-L needs two strings (prediction, reference)")
    # rouge_score's signature is score(target, prediction): the reference comes first.
    return _rouge_l_scorer().score(reference, prediction)["rougeL"]


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall = LCS(prediction, reference) / len(reference tokens) (Lin 2004).

    TOFU's ROUGE metric. Tokens are rouge-score's: lower-cased, non-alphanumerics dropped,
    Porter-stemmed. An empty prediction or reference scores 0.
    """
    return float(_rouge_l(prediction, reference).recall)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 = 2PR/(P+R), P = LCS/len(prediction), R = LCS/len(reference) (Lin 2004).

    Stemmed, so MedForget's exact-match test; MUSE's VerbMem / KnowMem use the unstemmed
    :func:`unlearn_bench.metrics.muse.muse_rouge_l_f1`.
    """
    return float(_rouge_l(prediction, reference).fmeasure)
