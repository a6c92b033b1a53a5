"""BLEURT checkpoints of bleurt-pytorch's layout load and score under our transformers.

The tiny checkpoints are built here with bleurt-pytorch's parameter names and config. Two
independent references: with no embedding projection BLEURT is exactly BERT + pooler + one
regression output, so transformers' own BertForSequenceClassification with the same weights;
and, for every variant, ``_bleurt_by_hand``: the architecture written out as tensor maths on the
checkpoint's raw tensors, one unpadded pair at a time, in float64.
"""

import json
import math

import pytest
import torch
from llmu_tiny import bleurt_config, bleurt_state_dict, build_bleurt_wordpiece

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.judges.bleurt_compat import bleurt_scores, load_bleurt

torch.set_num_threads(1)
REFS = ["a bird sat on the window", "this is a random sentence"]
CANDS = ["the bird sat by the window", "this is a sentence"]


def _bleurt_by_hand(folder, ids: list[int], types: list[int]) -> float:
    """BLEURT of one unpadded [CLS] ref [SEP] cand [SEP] sequence, from the raw tensors.

    Embeddings word + position + type -> LayerNorm -> (BLEURT-20) linear projection -> per layer:
    softmax(QK^T / sqrt(d_head)) V, dense, residual, LayerNorm; erf-GELU feed-forward, dense,
    residual, LayerNorm -> tanh(dense(h[CLS])) -> linear.
    """
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    w = {k: v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}
    heads, eps, n = config["num_attention_heads"], config["layer_norm_eps"], len(ids)

    def norm(x, prefix):
        mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def linear(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    e = "bleurt.embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:n]
    x = norm(x + w[e + "token_type_embeddings.weight"][types], e + "LayerNorm")
    if config["embedding_size"]:
        x = linear(x, "bleurt.encoder.embedding_projection")
    d = x.shape[1] // heads
    for i in range(config["num_hidden_layers"]):
        p = f"bleurt.encoder.layer.{i}."
        q, k, v = (linear(x, p + f"attention.self.{t}").view(n, heads, d).transpose(0, 1)
                   for t in ("query", "key", "value"))  # fmt: skip
        attended = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), -1) @ v
        attended = attended.transpose(0, 1).reshape(n, heads * d)
        x = norm(
            linear(attended, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
        )
        inner = linear(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + torch.erf(inner / math.sqrt(2)))
        x = norm(linear(inner, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = torch.tanh(linear(x[0], "bleurt.pooler.dense"))
    return float(linear(pooled, "classifier")[0])


def _pair(vocab: list[str], ref: str, cand: str) -> tuple[list[int], list[int]]:
    """[CLS] ref [SEP] cand [SEP] ids (whole words of the vocabulary) and their token types."""
    first = ["[CLS]", *ref.split(), "[SEP]"]
    second = [*cand.split(), "[SEP]"]
    return [vocab.index(t) for t in first + second], [0] * len(first) + [1] * len(second)


def test_matches_transformers_bert_when_there_is_no_projection(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    folder = build_bleurt_wordpiece(tmp_path / "bleurt")
    model, tokenizer = load_bleurt(folder)
    ours = bleurt_scores(model, tokenizer, REFS, CANDS)
    config = json.loads((folder / "config.json").read_text())
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=config["vocab_size"], hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )).eval()  # fmt: skip
    renamed = {k.replace("bleurt.", "bert.", 1): v for k, v in bleurt_state_dict(config).items()}
    missing, _ = bert.load_state_dict(renamed, strict=False)
    assert not [k for k in missing if not k.endswith("_ids")]
    enc = tokenizer(REFS, CANDS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = bert(**enc).logits[:, 0].tolist()
    assert ours == pytest.approx(reference, abs=1e-4)
    # Token types mark the candidate: [CLS] ref [SEP] are 0, cand [SEP] are 1.
    assert enc["token_type_ids"][0].tolist()[0] == 0 and enc["token_type_ids"][0].max() == 1


@pytest.mark.parametrize("embedding_size", [16, None], ids=["bleurt20-projection", "plain"])
def test_scores_equal_the_architecture_written_out_by_hand(tmp_path, embedding_size):
    folder = build_bleurt_wordpiece(tmp_path / "bleurt", embedding_size=embedding_size)
    model, tokenizer = load_bleurt(folder)
    # Every word is whole in the tiny vocabulary; the second pair is shorter, so the batch pads it.
    refs, cands = (
        ["a bird sat on the window", "the cat sat on the mat"],
        ["the bird sat on a window", "a cat"],
    )
    vocab = (folder / "vocab.txt").read_text().split("\n")
    expected = [
        _bleurt_by_hand(folder, *_pair(vocab, r, c)) for r, c in zip(refs, cands, strict=True)
    ]
    assert bleurt_scores(model, tokenizer, refs, cands) == pytest.approx(expected, abs=1e-5)
    # The reference is order-sensitive: swapping reference and candidate changes the value.
    swapped = _bleurt_by_hand(folder, *_pair(vocab, cands[0], refs[0]))
    assert abs(swapped - expected[0]) > 1e-3
    assert bleurt_scores(model, tokenizer, [cands[0]], [refs[0]]) == pytest.approx(
        [swapped], abs=1e-5
    )


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    from safetensors.torch import save_file

    folder = build_bleurt_wordpiece(tmp_path / "bleurt")
    config = json.loads((folder / "config.json").read_text())
    state = bleurt_state_dict(config)
    state.pop("classifier.bias")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    with pytest.raises(UnlearnBenchError, match="does not match"):
        load_bleurt(folder)
    with pytest.raises(UnlearnBenchError, match="config.json"):
        load_bleurt(tmp_path / "nowhere")


def test_sentencepiece_tokenizer_of_the_bleurt20_family(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    from safetensors.torch import save_file

    folder = tmp_path / "bleurt-sp"
    folder.mkdir()
    text = ["a bird sat on the window", "this is a random sentence", "the cat sat on the mat"] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(folder / "spm"), vocab_size=40,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    (folder / "spm.vocab").unlink()
    vocab = spm.SentencePieceProcessor(model_file=str(folder / "spm.model")).get_piece_size()
    config = bleurt_config(vocab, embedding_size=16)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in bleurt_state_dict(config).items()},
              str(folder / "model.safetensors"))  # fmt: skip
    model, tokenizer = load_bleurt(folder)
    assert type(tokenizer).__name__ == "DebertaV2Tokenizer"
    scores = bleurt_scores(model, tokenizer, REFS, CANDS)
    # The SentencePiece ids come from sentencepiece; the score from them is checked by hand:
    # token types are 0 up to and including the first [SEP], 1 after it.
    sep = tokenizer.convert_tokens_to_ids("[SEP]")
    expected = []
    for ref, cand in zip(REFS, CANDS, strict=True):
        ids = tokenizer(ref, cand)["input_ids"]
        assert ids[0] == tokenizer.convert_tokens_to_ids("[CLS]") and ids[-1] == sep
        first = ids.index(sep) + 1
        expected.append(_bleurt_by_hand(folder, ids, [0] * first + [1] * (len(ids) - first)))
    assert scores == pytest.approx(expected, abs=1e-5)
