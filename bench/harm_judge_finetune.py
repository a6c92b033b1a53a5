"""Measurement, try 4 of ``bench/harm_judge.py``: SmolLM2-135M's top layers trained as a classifier.

Same labelled rows, prompt split and figures as ``harm_judge.py``. The classifier is the embedded
SmolLM2-135M-Instruct with its top ``k`` decoder layers, its final norm and a new linear head
trained (binary cross-entropy, AdamW) on the train split's v0 rows only: both classes from one
release, one generator and the same prompts, so the head cannot score by which release a response
came from (``bench/results/harm_judge.md`` shows what training on the mixed set learns).

The layers below the trained ones never change, so their output (the input of layer ``30 - k``)
is computed once per text and cached; the script checks on one batch that the trained part,
run from that cache before any update, reproduces the whole model's final hidden states.
Settings (k, pooling, learning rate, epoch) are picked on val by v0 balanced accuracy; test is
read once, with the picked one.

Usage: ``python bench/harm_judge_finetune.py [OUT_DIR] [--top-layers 2,4] [--pools last,mean]
[--lrs 3e-5,1e-4] [--epochs 3]`` (the defaults are the grid of try 4).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from harm_judge import figures, load, needed_texts, text, train_sets  # noqa: E402

MAX_TOKENS = 192  # v0 texts: median 80 tokens, 95th percentile 164
TOP_LAYERS = (2, 4)
POOLS = ("last", "mean")
LRS = (3e-5, 1e-4)
EPOCHS = 3
BATCH = 8


def _model_and_tokenizer() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    from unlearn_bench.models import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    tok.padding_side = "right"
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModel.from_pretrained(smollm2_dir(), dtype=torch.float32).eval()
    return model, tok


def frozen_states(model: Any, tok: Any, texts: list[str], layer: int, out: Path) -> dict[str, Any]:
    """{text: (tokens, 576) input of decoder ``layer``}, computed once and cached under ``out``."""
    key = hashlib.sha256(json.dumps([layer, MAX_TOKENS, texts]).encode()).hexdigest()[:16]
    path = out / f"smollm2-layer{layer}-{key}.pt"
    if not path.exists():
        states = []
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                enc = tok(texts[i : i + 16], return_tensors="pt", padding=True, truncation=True,
                          max_length=MAX_TOKENS)  # fmt: skip
                hs = model(**enc, output_hidden_states=True).hidden_states[layer]
                lengths = enc["attention_mask"].sum(1)
                states += [h[: int(n)].clone() for h, n in zip(hs, lengths, strict=True)]
        torch.save(states, path)
    return dict(zip(texts, torch.load(path), strict=True))


class TopClassifier(torch.nn.Module):
    """SmolLM2's top ``k`` decoder layers and final norm, then a linear head on a pooled state."""

    def __init__(self, model: Any, k: int, pool: str) -> None:
        super().__init__()
        self.config = model.config
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.layers[-k:]))
        self.norm = copy.deepcopy(model.norm)
        self.rotary = model.rotary_emb
        self.head = torch.nn.Linear(model.config.hidden_size, 1)
        self.pool = pool

    def hidden(self, states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded batch of cached states through the trained layers: (final states, mask)."""
        from transformers.masking_utils import create_causal_mask

        lengths = torch.tensor([len(s) for s in states])
        h = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
        mask = (torch.arange(h.shape[1])[None] < lengths[:, None]).long()
        pos = torch.arange(h.shape[1])[None]
        causal = create_causal_mask(config=self.config, inputs_embeds=h, attention_mask=mask,
                                    past_key_values=None, position_ids=pos)  # fmt: skip
        rope = self.rotary(h, position_ids=pos)
        for layer in self.layers:
            h = layer(h, attention_mask=causal, position_ids=pos, position_embeddings=rope)
        return self.norm(h), mask

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        """One logit per text (unsafe = positive)."""
        h, mask = self.hidden(states)
        if self.pool == "last":
            pooled = h[torch.arange(h.shape[0]), mask.sum(1) - 1]
        else:
            m = mask.unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1)
        return self.head(pooled).squeeze(-1)


def check_top_path(model: Any, tok: Any, texts: list[str], k: int, states: dict) -> float:
    """Largest gap between the trained part run from the cache and the whole model (real tokens)."""
    batch = texts[:8]
    enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=MAX_TOKENS)
    with torch.no_grad():
        full = model(**enc).last_hidden_state
        top, mask = TopClassifier(model, k, "last").hidden([states[t] for t in batch])
    real = mask.bool()
    return float((full[real] - top[real]).abs().max())


def scorer(clf: TopClassifier, states: dict) -> Any:
    """Texts -> probability of unsafe, as ``harm_judge.figures`` takes it."""

    def score(texts: list[str]) -> np.ndarray:
        clf.eval()
        with torch.no_grad():
            logits = [clf([states[t] for t in texts[i : i + 32]]) for i in range(0, len(texts), 32)]
        return torch.sigmoid(torch.cat(logits)).numpy()

    return score


def train_and_pick(rows: list, pairs: list, model: Any, states: dict, k: int) -> list[tuple]:
    """Every (pool, lr) trained ``EPOCHS`` epochs; one val figure and weights per epoch."""
    train = train_sets(rows)["v0"]
    xs = [text(r["prompt"], r["response"]) for r in train]
    ys = torch.tensor([float(r["label"]) for r in train])
    found = []
    for pool in POOLS:
        for lr in LRS:
            torch.manual_seed(0)
            clf = TopClassifier(model, k, pool)
            opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=0.01)
            order_rng = np.random.default_rng(0)
            for epoch in range(1, EPOCHS + 1):
                t0 = time.time()
                clf.train()
                order = order_rng.permutation(len(xs))
                losses = []
                for i in range(0, len(xs), BATCH):
                    idx = order[i : i + BATCH]
                    logits = clf([states[xs[j]] for j in idx])
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, ys[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                val = figures(scorer(clf, states), rows, pairs, "val")
                setting = {"try": "smollm2-finetune", "train": "v0", "n_train": len(xs),
                           "top_layers": k, "pool": pool, "lr": lr, "epoch": epoch}  # fmt: skip
                timing = {"train_loss": round(float(np.mean(losses)), 4),
                          "epoch_s": round(time.time() - t0, 1)}  # fmt: skip
                print(json.dumps({**setting, **timing, **val}), flush=True)
                weights = copy.deepcopy(clf.state_dict())
                found.append((val["v0_balanced_accuracy"], setting, weights))
    return found


def main() -> None:
    """Cache the frozen part, train every setting, read test once with the one picked on val."""
    global TOP_LAYERS, POOLS, LRS, EPOCHS
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default="/tmp/harm_judge")
    parser.add_argument("--top-layers", default=",".join(map(str, TOP_LAYERS)))
    parser.add_argument("--pools", default=",".join(POOLS))
    parser.add_argument("--lrs", default=",".join(map(str, LRS)))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    TOP_LAYERS = tuple(int(k) for k in args.top_layers.split(","))
    POOLS, LRS = tuple(args.pools.split(",")), tuple(float(x) for x in args.lrs.split(","))
    EPOCHS = args.epochs
    print(json.dumps({"grid": {"top_layers": TOP_LAYERS, "pools": POOLS, "lrs": LRS,
                               "epochs": EPOCHS}}), flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows, pairs = load()
    texts = needed_texts(rows, pairs)
    texts += sorted({text(r["prompt"], r["response"]) for r in train_sets(rows)["v0"]} - set(texts))
    model, tok = _model_and_tokenizer()
    found = []
    for k in TOP_LAYERS:
        layer = model.config.num_hidden_layers - k
        states = frozen_states(model, tok, texts, layer, out)
        gap = check_top_path(model, tok, texts, k, states)
        print(json.dumps({"top_layers": k, "cached_layer": layer, "n_texts": len(states),
                          "max_abs_gap_vs_whole_model": gap,
                          "wall_s": round(time.time() - t0, 1)}), flush=True)  # fmt: skip
        assert gap < 1e-3, f"the cached path differs from the whole model by {gap}"
        found += [(v, s, w, states) for v, s, w in train_and_pick(rows, pairs, model, states, k)]
    _, setting, weights, states = max(found, key=lambda f: f[0])
    clf = TopClassifier(model, setting["top_layers"], setting["pool"])
    clf.load_state_dict(weights)
    test = figures(scorer(clf, states), rows, pairs, "test")
    print(json.dumps({**setting, "picked_on_val": True, **test}), flush=True)
    print(json.dumps({"try": "smollm2-finetune", "total_wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
