"""BLEURT checkpoints of bleurt-pytorch (e.g. ``lucadiliello/BLEURT-20-D12``) under transformers 5.

bleurt-pytorch 0.0.1 cannot be imported with transformers 5: it imports
``transformers.pytorch_utils.find_pruneable_heads_and_indices`` and
``transformers.models.bert.tokenization_bert_fast`` (both removed), and its model calls
``PreTrainedModel.get_extended_attention_mask`` / ``get_head_mask`` (also removed). Patching
three removed APIs into someone else's package is brittle, so instead this module implements
the same architecture (Sellam et al. 2020, BLEURT: a BERT/RemBERT encoder whose pooled [CLS]
output goes through one linear regression head) with parameter names identical to
bleurt-pytorch's ``BleurtForSequenceClassification``, and loads its checkpoint files directly:
``config.json`` (``model_type: bleurt``), ``model.safetensors`` or ``pytorch_model.bin``
(read with ``weights_only=True``), and the tokenizer (``spm.model`` SentencePiece for the
BLEURT-20 family, through transformers' DebertaV2Tokenizer as bleurt-pytorch does; or
``vocab.txt`` WordPiece for the original BLEURT-base/large/tiny).

Architecture (eval mode): embeddings (word + position + token type, LayerNorm, all of size
``embedding_size`` or ``hidden_size``) -> optional linear projection to ``hidden_size`` (BLEURT-20)
-> ``num_hidden_layers`` post-LayerNorm Transformer layers -> tanh(dense([CLS])) -> linear -> score.
Input: ``[CLS] reference [SEP] candidate [SEP]`` with token types 0 / 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearn_bench.errors import UnlearnBenchError


class _Config:
    def __init__(self, data: dict[str, Any]) -> None:
        if data.get("model_type") != "bleurt":
            raise UnlearnBenchError(f"not a BLEURT config (model_type={data.get('model_type')!r})")
        self.vocab_size = int(data["vocab_size"])
        self.hidden_size = int(data["hidden_size"])
        self.embedding_size = int(data.get("embedding_size") or self.hidden_size)
        self.project = data.get("embedding_size") is not None
        self.layers = int(data["num_hidden_layers"])
        self.heads = int(data["num_attention_heads"])
        self.intermediate = int(data["intermediate_size"])
        self.act = str(data.get("hidden_act", "gelu"))
        self.positions = int(data.get("max_position_embeddings", 512))
        self.types = int(data.get("type_vocab_size", 2))
        self.eps = float(data.get("layer_norm_eps", 1e-12))
        self.pad_id = int(data.get("pad_token_id", 0))


class _Embeddings(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.embedding_size)
        self.position_embeddings = nn.Embedding(c.positions, c.embedding_size)
        self.token_type_embeddings = nn.Embedding(c.types, c.embedding_size)
        self.LayerNorm = nn.LayerNorm(c.embedding_size, eps=c.eps)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.word_embeddings(ids) + self.token_type_embeddings(types)
        return self.LayerNorm(x + self.position_embeddings(positions))


class _Dense(nn.Module):
    """Linear + residual + LayerNorm (BERT's "output" blocks)."""

    def __init__(self, n_in: int, n_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _SelfAttention(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.heads = c.heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


class _Attention(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Dense(c.hidden_size, c.hidden_size, c.eps)


class _Intermediate(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.dense = nn.Linear(c.hidden_size, c.intermediate)
        self.act = ACT2FN[c.act]


class _Layer(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Dense(c.intermediate, c.hidden_size, c.eps)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.attention.output(self.attention.self(h, bias), h)
        return self.output(self.intermediate.act(self.intermediate.dense(h)), h)


class _Encoder(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_Layer(c) for _ in range(c.layers)])
        if c.project:
            self.embedding_projection = nn.Linear(c.embedding_size, c.hidden_size)


class _Pooler(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)


class _Bleurt(nn.Module):
    def __init__(self, c: _Config) -> None:
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.pooler = _Pooler(c)


class BleurtScorer(nn.Module):
    """BLEURT regression model; parameter names match bleurt-pytorch's checkpoints."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = _Config(config)
        self.bleurt = _Bleurt(self.config)
        self.classifier = nn.Linear(self.config.hidden_size, 1)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """One BLEURT score per row, shape (batch,)."""
        h = self.bleurt.embeddings(input_ids, token_type_ids)
        if self.config.project:
            h = self.bleurt.encoder.embedding_projection(h)
        # Padded keys get the dtype's most negative value, as BERT's extended attention mask.
        bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.bleurt.encoder.layer:
            h = layer(h, bias)
        pooled = torch.tanh(self.bleurt.pooler.dense(h[:, 0]))
        return self.classifier(pooled).squeeze(-1)


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """A checkpoint folder's weights (safetensors, else pytorch_model.bin)."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise UnlearnBenchError(f"no model.safetensors or pytorch_model.bin in {folder}")


def load_bleurt(folder: str | Path) -> tuple[BleurtScorer, Any]:
    """Model and tokenizer of a local bleurt-pytorch checkpoint folder (see module docstring)."""
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise UnlearnBenchError(f"BLEURT checkpoint {folder} has no config.json")
    model = BleurtScorer(json.loads((folder / "config.json").read_text()))
    state = {k: v for k, v in load_state_dict(folder).items() if not k.endswith("_ids")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UnlearnBenchError(
            f"BLEURT checkpoint {folder} does not match the architecture: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval(), _tokenizer(folder)


def _tokenizer(folder: Path) -> Any:
    from transformers import BertTokenizer, DebertaV2Tokenizer

    config_path = folder / "tokenizer_config.json"
    settings = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if (folder / "spm.model").is_file():
        lower = bool(settings.get("do_lower_case", False))
        return DebertaV2Tokenizer.from_pretrained(folder, do_lower_case=lower)
    if (folder / "vocab.txt").is_file():
        return BertTokenizer.from_pretrained(
            folder, do_lower_case=settings.get("do_lower_case", True)
        )
    raise UnlearnBenchError(f"BLEURT checkpoint {folder} has neither spm.model nor vocab.txt")


@torch.no_grad()
def bleurt_scores(
    model: BleurtScorer, tokenizer: Any, references: list[str], candidates: list[str],
    batch_size: int = 16, max_length: int = 512,
) -> list[float]:  # fmt: skip
    """BLEURT(reference, candidate) per pair."""
    out: list[float] = []
    pad, vocab = model.config.pad_id, model.config.vocab_size
    for s in range(0, len(references), batch_size):
        enc = tokenizer(references[s : s + batch_size], candidates[s : s + batch_size],
                        padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")  # fmt: skip
        ids = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, pad)
        if int(ids.max()) >= vocab:
            raise UnlearnBenchError("BLEURT tokenizer produced ids outside the model's vocabulary")
        out += model(ids, enc["token_type_ids"], enc["attention_mask"]).tolist()
    return out
