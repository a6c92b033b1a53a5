"""BLEURT checkpoints of bleurt-pytorch's layout load and score under our transformers.

The tiny checkpoints are built here with bleurt-pytorch's parameter names and config; with no
embedding projection BLEURT is exactly BERT + pooler + one regression output, so transformers'
own BertForSequenceClassification with the same weights is an independent reference.
"""

import json

import pytest
import torch
from llmu_tiny import bleurt_config, bleurt_state_dict, build_bleurt_wordpiece

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.judges.bleurt_compat import bleurt_scores, load_bleurt

torch.set_num_threads(1)
REFS = ["a bird sat on the window", "this is a random sentence"]
CANDS = ["the bird sat by the window", "this is a sentence"]


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


def test_embedding_projection_variant_loads_and_pads_safely(tmp_path):
    folder = build_bleurt_wordpiece(tmp_path / "bleurt20", embedding_size=16)
    model, tokenizer = load_bleurt(folder)
    assert model.bleurt.encoder.embedding_projection.weight.shape == (32, 16)
    batched = bleurt_scores(model, tokenizer, REFS, CANDS)
    one_by_one = [
        bleurt_scores(model, tokenizer, [r], [c])[0] for r, c in zip(REFS, CANDS, strict=True)
    ]
    assert batched == pytest.approx(one_by_one, abs=1e-5)  # padding never changes a score


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
    assert len(scores) == 2 and all(s == s for s in scores)  # finite, not NaN
