"""Tiny local models for the llmu judge tests: BERT encoders / classifiers and BLEURT checkpoints.

Everything is built from random weights and a WordPiece vocabulary written here; nothing is
downloaded. Shapes are small so each model builds in well under a second.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

WORDS = (
    "the a an is was cat dog sat on mat rug kitten sitting bird window this random sentence "
    "how do i make build steal hack safe unsafe sorry cannot help you with that question answer "
    "paris france capital of what which who sure here instructions bomb weapon kill people"
).split()


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *chars,
        *(f"##{c}" for c in chars),
    ]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return folder


def bert_tokenizer(folder: Path):
    from transformers import BertTokenizer

    write_vocab(folder)
    tokenizer = BertTokenizer.from_pretrained(folder, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, **extra,
    )  # fmt: skip


def build_bert_encoder(folder: Path, seed: int = 0) -> Path:
    """A tiny random BertModel folder usable as a sentence embedder."""
    import torch
    from transformers import BertModel

    tokenizer = bert_tokenizer(folder)
    torch.manual_seed(seed)
    BertModel(bert_config(len(tokenizer))).save_pretrained(folder)
    return folder


def build_bert_classifier(
    folder: Path, labels: list[str], multi_label: bool, seed: int = 0
) -> Path:
    """A tiny random BertForSequenceClassification with the given label names."""
    import torch
    from transformers import BertForSequenceClassification

    tokenizer = bert_tokenizer(folder)
    torch.manual_seed(seed)
    config = bert_config(
        len(tokenizer), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else None,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def bleurt_config(vocab_size: int, embedding_size: int | None) -> dict:
    """A config.json as bleurt-pytorch writes it (model_type "bleurt")."""
    return {
        "model_type": "bleurt", "architectures": ["BleurtForSequenceClassification"],
        "vocab_size": vocab_size, "embedding_size": embedding_size, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "hidden_act": "gelu", "max_position_embeddings": 128, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "num_labels": 1,
    }  # fmt: skip


def bleurt_state_dict(config: dict, seed: int = 0) -> dict:
    """Random weights under bleurt-pytorch's parameter names (BleurtForSequenceClassification)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    h, e = config["hidden_size"], config["embedding_size"] or config["hidden_size"]
    inter, v = config["intermediate_size"], config["vocab_size"]

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    sd = {
        "bleurt.embeddings.word_embeddings.weight": w(v, e),
        "bleurt.embeddings.position_embeddings.weight": w(config["max_position_embeddings"], e),
        "bleurt.embeddings.token_type_embeddings.weight": w(2, e),
        "bleurt.embeddings.LayerNorm.weight": 1 + w(e), "bleurt.embeddings.LayerNorm.bias": w(e),
        "bleurt.embeddings.position_ids": torch.arange(config["max_position_embeddings"])[None],
        "bleurt.pooler.dense.weight": w(h, h), "bleurt.pooler.dense.bias": w(h),
        "classifier.weight": w(1, h), "classifier.bias": w(1),
    }  # fmt: skip
    if config["embedding_size"]:
        sd["bleurt.encoder.embedding_projection.weight"] = w(h, e)
        sd["bleurt.encoder.embedding_projection.bias"] = w(h)
    for i in range(config["num_hidden_layers"]):
        p = f"bleurt.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd[p + f"attention.self.{name}.weight"], sd[p + f"attention.self.{name}.bias"] = (
                w(h, h),
                w(h),
            )
        sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"] = (
            w(h, h),
            w(h),
        )
        sd[p + "attention.output.LayerNorm.weight"] = 1 + w(h)
        sd[p + "attention.output.LayerNorm.bias"] = w(h)
        sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = (
            w(inter, h),
            w(inter),
        )
        sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = w(h, inter), w(h)
        sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"] = 1 + w(h), w(h)
    return sd


def build_bleurt_wordpiece(folder: Path, embedding_size: int | None = None) -> Path:
    """A tiny BLEURT checkpoint folder: config.json, model.safetensors, vocab.txt."""
    from safetensors.torch import save_file

    tokenizer = bert_tokenizer(folder)
    config = bleurt_config(len(tokenizer), embedding_size)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in bleurt_state_dict(config).items()},
              str(folder / "model.safetensors"))  # fmt: skip
    return folder
