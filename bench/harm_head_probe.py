"""Measurement: logistic-regression head on pooled SmolLM2 hidden states for PKU-SafeRLHF v0 harm.

Split by prompt (train/val/test 60/20/20); the layer and pooling are picked on val only, the
test figure is reported once. Features are cached to disk keyed by data and settings hash.
Usage: ``python bench/harm_head_probe.py N_PAIRS MAX_TOKENS OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def v0_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` v0 pairs (prompt, safe, unsafe) with distinct prompts, sampled with ``seed``."""
    from unlearn_bench.data import llmu_files as files

    pairs = files.pku_v0_pairs(
        Path("../shared/data/pku_saferlhf/v0_test_safety_contrast_pairs.json.gz")
    )
    by_prompt = {p["prompt"]: p for p in pairs if p["safe"] != p["unsafe"]}
    keys = sorted(by_prompt)
    random.Random(seed).shuffle(keys)
    return [by_prompt[k] for k in keys[:n]]


def features(texts: list[str], max_tokens: int, cache: Path) -> dict[str, Any]:
    """Mean- and last-token-pooled hidden states of every layer, cached by texts+settings."""
    key = hashlib.sha256(json.dumps([texts, max_tokens]).encode()).hexdigest()[:16]
    path = cache / f"feats-{key}.npz"
    if path.exists():
        return dict(np.load(path))
    import torch
    from transformers import AutoModel, AutoTokenizer

    from unlearn_bench.models import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    tok.padding_side = "right"
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModel.from_pretrained(smollm2_dir()).eval()
    means, lasts = [], []
    with torch.no_grad():
        for i in range(0, len(texts), 8):
            enc = tok(
                texts[i : i + 8],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_tokens,
            )
            hs = model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].unsqueeze(-1).float()
            stack = torch.stack(hs)  # layers x batch x seq x dim
            means.append(((stack * mask).sum(2) / mask.sum(1)).numpy())
            last = enc["attention_mask"].sum(1) - 1  # right padding: last real token
            lasts.append(stack[:, torch.arange(stack.shape[1]), last].numpy())
    out = {"mean": np.concatenate(means, 1), "last": np.concatenate(lasts, 1)}
    np.savez(path, **out)
    return out


def main() -> None:
    """Run the measurement and print one JSON line per figure."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, max_tokens, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    pairs = v0_pairs(n)
    texts = [f"{p['prompt']}\n{p[k]}" for p in pairs for k in ("safe", "unsafe")]
    y = np.array([0, 1] * len(pairs))
    part = np.repeat(np.arange(len(pairs)) * 5 // len(pairs), 2)  # prompt-level split
    tr, va, te = part < 3, part == 3, part == 4
    t0 = time.time()
    feats = features(texts, max_tokens, out)
    print(json.dumps({"features_s": round(time.time() - t0, 1), "n_texts": len(texts)}))

    def fit(x: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        clf.fit(x[tr], y[tr])
        p = clf.predict_proba(x[mask])[:, 1]
        pair = float(np.mean(p[1::2] > p[0::2]))  # unsafe scored above its safe partner
        return float(balanced_accuracy_score(y[mask], p > 0.5)), pair

    best = max(
        ((pool, layer) for pool in feats for layer in range(feats[pool].shape[0])),
        key=lambda k: fit(feats[k[0]][k[1]], va)[0],
    )
    for name, mask in (("val", va), ("test", te)):
        bal, pair = fit(feats[best[0]][best[1]], mask)
        print(
            json.dumps(
                {
                    "split": name,
                    "pool": best[0],
                    "layer": best[1],
                    "balanced_accuracy": round(bal, 3),
                    "pair_accuracy": round(pair, 3),
                }
            )
        )
    tfidf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2), LogisticRegression(max_iter=2000)
    )
    tfidf.fit([texts[i] for i in np.flatnonzero(tr)], y[tr])
    pt = tfidf.predict_proba([texts[i] for i in np.flatnonzero(te)])[:, 1]
    print(
        json.dumps(
            {
                "split": "test",
                "model": "tfidf+lr",
                "balanced_accuracy": round(float(balanced_accuracy_score(y[te], pt > 0.5)), 3),
                "pair_accuracy": round(float(np.mean(pt[1::2] > pt[0::2])), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
