"""Measurement: offline harm judges on the whole labelled PKU-SafeRLHF set, split by prompt.

Labelled set (issue 13): v0 safe responses = 0; v0 unsafe and v1 Alpaca-7B unsafe responses = 1;
prompts in the ``JUDGE`` hash buckets only, so no evaluated prompt is trained on; a (prompt,
response) labelled both ways is dropped. Every prompt goes to train / val / test (60/20/20) by a
salted hash of its text, so no prompt is on two sides (the v0 pairs of a prompt stay together).
Each split is class-balanced by sampling: all its safe rows and as many unsafe rows drawn
uniformly from its unsafe pool. Settings are picked on val; test is read once per try.

Figures per split: balanced accuracy on the balanced sample (threshold 0.5); per-source
recall; v0 balanced accuracy over all v0 rows of the split (v0 safe vs v0 unsafe, the part with
no source confound); v0 pair accuracy over all v0 pairs of the split, in two forms: ``ranked``
(the unsafe response scored above its safe partner) and ``both`` (both responses classified
right at 0.5).

Usage: ``python bench/harm_judge.py TRY [OUT_DIR]`` with TRY one of tfidf, minilm, smollm2,
probe (the shipped probe judge's own held-out figures).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("../shared/data")
SPLITS = ("train", "val", "test")


def split_of(prompt: str) -> str:
    """Split (train/val/test 60/20/20) by a salted hash, independent of the JUDGE buckets."""
    h = int(hashlib.sha256(f"harm-judge-split\n{prompt}".encode()).hexdigest(), 16) % 5
    return SPLITS[0] if h < 3 else SPLITS[h - 2]


def load() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Unique labelled rows (prompt, response, label, source, split) and the v0 pairs."""
    from unlearn_bench.data import llmu_files as files
    from unlearn_bench.data.llmu import JUDGE, in_buckets

    labels: dict[tuple[str, str], set[int]] = {}
    source: dict[tuple[str, str], str] = {}
    for name in ("v1", "v0"):  # v0 last: a pair in both is tagged v0
        for r in files.pku_labelled(DATA, f"local:{name}"):
            if in_buckets(r["prompt"], JUDGE):
                key = (r["prompt"], r["response"])
                labels.setdefault(key, set()).add(int(not r["is_safe"]))
                source[key] = name
    rows = [
        {
            "prompt": k[0],
            "response": k[1],
            "label": next(iter(v)),
            "source": source[k],
            "split": split_of(k[0]),
        }  # fmt: skip
        for k, v in sorted(labels.items())
        if len(v) == 1
    ]
    pairs = [
        p
        for p in files.pku_v0_pairs(DATA / "pku_saferlhf/v0_test_safety_contrast_pairs.json.gz")
        if p["safe"] != p["unsafe"] and in_buckets(p["prompt"], JUDGE)
    ]
    return rows, pairs


def balanced(rows: list[dict[str, Any]], split: str, seed: int = 0) -> list[dict[str, Any]]:
    """All safe rows of ``split`` and as many unsafe ones drawn uniformly (seeded)."""
    safe = [r for r in rows if r["split"] == split and r["label"] == 0]
    unsafe = [r for r in rows if r["split"] == split and r["label"] == 1]
    rng = random.Random(f"{seed}-{split}")
    return safe + rng.sample(unsafe, min(len(safe), len(unsafe)))


def text(prompt: str, response: str) -> str:
    """Prompt and response on two lines (what the probe judge embeds)."""
    return f"{prompt}\n{response}"


def figures(
    score: Callable[[list[str]], np.ndarray],
    rows: list[dict[str, Any]],
    pairs: list[dict[str, str]],
    split: str,
) -> dict[str, Any]:
    """Balanced accuracy, per-source recall, v0 balanced accuracy and v0 pair accuracy."""
    from sklearn.metrics import balanced_accuracy_score

    sample = balanced(rows, split)
    p = score([text(r["prompt"], r["response"]) for r in sample])
    y = np.array([r["label"] for r in sample])
    out: dict[str, Any] = {"split": split, "n_balanced": len(sample),
                           "balanced_accuracy": balanced_accuracy_score(y, p >= 0.5)}  # fmt: skip
    v0 = [r for r in rows if r["split"] == split and r["source"] == "v0"]
    pv0 = score([text(r["prompt"], r["response"]) for r in v0])
    yv0 = np.array([r["label"] for r in v0])
    out["n_v0"] = len(v0)
    out["v0_balanced_accuracy"] = balanced_accuracy_score(yv0, pv0 >= 0.5)
    src = np.array([r["source"] for r in sample])
    for name, mask in (("safe_v0", y == 0), ("unsafe_v0", (y == 1) & (src == "v0")),
                       ("unsafe_v1", (y == 1) & (src == "v1"))):  # fmt: skip
        out[f"n_{name}"] = int(mask.sum())
        out[f"recall_{name}"] = float(np.mean((p[mask] >= 0.5) == (y[mask] == 1)))
    ps = [q for q in pairs if split_of(q["prompt"]) == split]
    s_safe = score([text(q["prompt"], q["safe"]) for q in ps])
    s_unsafe = score([text(q["prompt"], q["unsafe"]) for q in ps])
    out["n_pairs"] = len(ps)
    out["pair_ranked"] = float(np.mean(s_unsafe > s_safe))
    out["pair_both"] = float(np.mean((s_unsafe >= 0.5) & (s_safe < 0.5)))
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def fit_lr(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    """Standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x, y)


def train_sets(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``all``: the class-balanced train split (the issue's set); ``v0``: its v0 rows only."""
    v0 = [r for r in rows if r["split"] == "train" and r["source"] == "v0"]
    return {"all": balanced(rows, "train"), "v0": v0}


def needed_texts(rows: list[dict[str, Any]], pairs: list[dict[str, str]]) -> list[str]:
    """Every text a try scores: both train sets, the val/test samples, v0 rows and pairs."""
    wanted = [r for t in train_sets(rows).values() for r in t]
    wanted += [r for s in SPLITS[1:] for r in balanced(rows, s)]
    wanted += [r for r in rows if r["source"] == "v0" and r["split"] != "train"]
    out = {text(r["prompt"], r["response"]) for r in wanted}
    out |= {text(q["prompt"], q[k]) for q in pairs for k in ("safe", "unsafe")
            if split_of(q["prompt"]) != "train"}  # fmt: skip
    return sorted(out)


def table(name: str, texts: list[str], out: Path, embed: Callable[[list[str]], Any]) -> Any:
    """{text: vector} of ``embed`` over ``texts``, cached under ``out`` by texts and settings."""
    key = hashlib.sha256(json.dumps([name, texts]).encode()).hexdigest()[:16]
    path = out / f"{name}-{key}.npy"
    if not path.exists():
        np.save(path, embed(texts))
    return dict(zip(texts, np.load(path), strict=True))


def try_tfidf(rows: list[dict[str, Any]], pairs: list[dict[str, str]], out: Path) -> None:
    """TF-IDF (word 1-2 grams, or char 2-5 grams) + LR; analyser and C picked on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    settings = {"word12": {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True},
                "char25": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2,
                           "sublinear_tf": True}}  # fmt: skip
    for train_on, train in train_sets(rows).items():
        xt, yt = [text(r["prompt"], r["response"]) for r in train], [r["label"] for r in train]
        results = []
        for name, kw in settings.items():
            for c in (0.3, 1.0, 3.0, 10.0):
                model = make_pipeline(TfidfVectorizer(**kw), LogisticRegression(C=c, max_iter=3000))
                model.fit(xt, yt)
                val = figures(lambda t, m=model: m.predict_proba(t)[:, 1], rows, pairs, "val")
                results.append((_pick_key(val, train_on), name, c, model))
                print(json.dumps({"try": f"tfidf-{name}", "train": train_on, "n_train": len(yt),
                                  "C": c, **val}), flush=True)  # fmt: skip
        _, name, c, model = max(results, key=lambda r: r[0])
        test = figures(lambda t, m=model: m.predict_proba(t)[:, 1], rows, pairs, "test")
        print(json.dumps({"try": f"tfidf-{name}", "train": train_on, "n_train": len(yt), "C": c,
                          "picked_on_val": True, **test}), flush=True)  # fmt: skip


def source_probe(rows: list[dict[str, Any]]) -> None:
    """How well TF-IDF + LR tells v0 unsafe from v1 unsafe responses (same label, other source)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline

    def part(split: str) -> tuple[list[str], list[int]]:
        v0 = [r for r in rows if r["split"] == split and r["source"] == "v0" and r["label"] == 1]
        v1 = [r for r in rows if r["split"] == split and r["source"] == "v1"]
        v1 = random.Random(split).sample(v1, len(v0))
        return [text(r["prompt"], r["response"]) for r in v0 + v1], [0] * len(v0) + [1] * len(v1)

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegression(max_iter=3000)).fit(*part("train"))  # fmt: skip
    xt, yt = part("test")
    acc = balanced_accuracy_score(yt, model.predict(xt))
    print(json.dumps({"try": "source-probe v0-unsafe vs v1-unsafe", "split": "test",
                      "n": len(yt), "balanced_accuracy": round(float(acc), 3)}))  # fmt: skip


def length_only(rows: list[dict[str, Any]], pairs: list[dict[str, str]]) -> None:
    """LR on log response length alone, trained like the issue's set: what no harm reading gets."""
    from sklearn.linear_model import LogisticRegression

    def feat(texts: list[str]) -> np.ndarray:
        return np.log1p([[len(t.split("\n", 1)[1])] for t in texts])

    train = balanced(rows, "train")
    xt = feat([text(r["prompt"], r["response"]) for r in train])
    model = LogisticRegression().fit(xt, [r["label"] for r in train])
    test = figures(lambda t: model.predict_proba(feat(t))[:, 1], rows, pairs, "test")
    print(json.dumps({"try": "length-only", "train": "all", "n_train": len(train), **test}))


def _pick_key(val: dict[str, Any], train_on: str) -> float:
    # A v0-only head is picked on the v0 figure: its val sample's unsafe side is mostly v1.
    return float(val["v0_balanced_accuracy" if train_on == "v0" else "balanced_accuracy"])


def try_embedded(
    kind: str, rows: list[dict[str, Any]], pairs: list[dict[str, str]], out: Path
) -> None:
    """LR on MiniLM embeddings, or on pooled SmolLM2 hidden states (layer, pooling, C on val)."""
    t0 = time.time()
    vec = table(kind, needed_texts(rows, pairs), out, _minilm if kind == "minilm" else _smollm2)
    print(json.dumps({"try": kind, "n_texts": len(vec), "features_s": round(time.time() - t0, 1)}),
          flush=True)  # fmt: skip
    views = (
        {"all": lambda x: x}
        if kind == "minilm"
        else {f"{pool}{layer}": (lambda x, i=i: x[:, i]) for i, (pool, layer) in enumerate(_VIEWS)}
    )
    for train_on, train in train_sets(rows).items():
        xt = np.stack([vec[text(r["prompt"], r["response"])] for r in train])
        yt = np.array([r["label"] for r in train])
        results = []
        for view, pick in views.items():
            for c in (0.01, 0.1, 1.0):
                model = fit_lr(pick(xt), yt, c)

                def score(t: list[str], m: Any = model, f: Any = pick) -> np.ndarray:
                    return m.predict_proba(f(np.stack([vec[s] for s in t])))[:, 1]

                val = figures(score, rows, pairs, "val")
                results.append((_pick_key(val, train_on), view, c, score))
                print(json.dumps({"try": kind, "train": train_on, "n_train": len(yt),
                                  "view": view, "C": c, **val}), flush=True)  # fmt: skip
        _, view, c, score = max(results, key=lambda r: r[0])
        test = figures(score, rows, pairs, "test")
        print(json.dumps({"try": kind, "train": train_on, "n_train": len(yt), "view": view, "C": c,
                          "picked_on_val": True, **test}), flush=True)  # fmt: skip
    print(json.dumps({"try": kind, "wall_s": round(time.time() - t0, 1)}))


def _minilm(texts: list[str]) -> np.ndarray:
    from unlearn_bench.judges.embed import Embedder

    return np.asarray(Embedder().encode(texts))


#: SmolLM2 views kept per text: (pooling, layer); mean and last-token pooling of a few layers.
_VIEWS = [(pool, layer) for pool in ("mean", "last") for layer in (10, 15, 20, 25, 29, 30)]


def _smollm2(texts: list[str], max_tokens: int = 128) -> np.ndarray:
    """(n, len(_VIEWS), 576) pooled hidden states of SmolLM2-135M over the first tokens."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from unlearn_bench.models import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    tok.padding_side = "right"
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModel.from_pretrained(smollm2_dir(), dtype=torch.float32).eval()
    chunks = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            batch = [texts[j] for j in order[i : i + 16]]
            enc = tok(batch, return_tensors="pt", padding=True, truncation=True,
                      max_length=max_tokens)  # fmt: skip
            hs = model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].unsqueeze(-1).float()
            last = enc["attention_mask"].sum(1) - 1
            views = []
            for pool, layer in _VIEWS:
                h = hs[layer]
                views.append((h * mask).sum(1) / mask.sum(1) if pool == "mean"
                             else h[torch.arange(h.shape[0]), last])  # fmt: skip
            chunks.append(torch.stack(views, 1).numpy())
    feats = np.concatenate(chunks)
    out = np.empty_like(feats)
    out[order] = feats
    return out


def try_probe() -> None:
    """The shipped ``probe`` judge's identity (held-out figures) for the tasks' labelled sets."""
    from unlearn_bench.judges import ScorerContext
    from unlearn_bench.judges.probe import ProbeJudge

    for labelled in ("pku:local:v0", "halueval:local"):
        t0 = time.time()
        context = ScorerContext(spec=None, slot="probe", evaluated=None, data_dir=str(DATA))  # type: ignore[arg-type]
        ident = ProbeJudge(context, labelled).identity()
        print(json.dumps({"try": "probe", "wall_s": round(time.time() - t0, 1), **ident}))


def main() -> None:
    """Run one try and print one JSON line per figure."""
    which = sys.argv[1]
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/harm_judge")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows, pairs = load()
    counts = {s: {f"{src}:{lab}": sum(1 for r in rows if r["split"] == s and r["source"] == src
                                      and r["label"] == lab)
                  for src in ("v0", "v1") for lab in (0, 1)} for s in SPLITS}  # fmt: skip
    prompts = {s: {r["prompt"] for r in rows if r["split"] == s} for s in SPLITS}
    assert not (prompts["train"] & prompts["val"] or prompts["train"] & prompts["test"]
                or prompts["val"] & prompts["test"]), "a prompt is on two sides"  # fmt: skip
    print(json.dumps({"rows": counts, "prompts": {s: len(p) for s, p in prompts.items()}}))
    if which == "probe":
        try_probe()
        return
    if which == "tfidf":
        try_tfidf(rows, pairs, out)
        source_probe(rows)
        length_only(rows, pairs)
    else:
        try_embedded(which, rows, pairs, out)
    print(json.dumps({"try": which, "total_wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
