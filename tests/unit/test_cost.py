"""Cost accounting: token counts and FLOP estimates checked by hand and against torch's counter."""

import json

import pytest
import torch

from unlearn_bench.cli import main
from unlearn_bench.train.cost import (
    TOKEN_COUNT_HOOKED,
    TOKEN_COUNT_PARTS,
    TokenTally,
    measured_step_flops,
    parameter_counts,
    train_flops,
    train_stage_cost,
)

torch.set_num_threads(1)


def test_formula_by_hand():
    # All parameters trained: 6 * N * tokens. Only 10 of 100 trained: (400 + 20) * tokens.
    assert train_flops(100, 100, 7) == 6 * 100 * 7
    assert train_flops(100, 10, 7) == 420 * 7


def test_stage_cost_from_a_known_model_and_log(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    n = model.num_parameters()  # tied embeddings counted once, as in the safetensors file
    stage = tmp_path / "stage"
    model.save_pretrained(stage)
    # Two steps: a batch with masks [1,1,1,0] + [1,1,0,0] = 5 tokens, then 3 + 4 = 7 tokens.
    rows = [{"step": 1, "tokens": 5, "elapsed_s": 0.5}, {"step": 2, "tokens": 7, "elapsed_s": 1.25}]
    (stage / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cost = train_stage_cost(stage, "all", lora=False, processes=1)
    assert (cost["forward_tokens"], cost["backward_tokens"], cost["steps"]) == (12, 12, 2)
    assert cost["wall_s"] == 1.25 and cost["n_total"] == n == cost["n_trained"]
    assert cost["flops"] == 6 * n * 12
    assert cost["peak_rss_bytes"] > 0 and cost["device"] == "cpu" and cost["processes"] == 1
    # Only the MLP down projections trained: N_trained is their element count (2 layers, 32x64).
    assert parameter_counts(stage, r"mlp\.down_proj")[1] == 2 * 32 * 64
    lora = train_stage_cost(stage, "all", lora=True, processes=1)
    assert lora["flops"] is None and "LoRA" in lora["flops_withheld"]
    assert cost["token_count"] == TOKEN_COUNT_PARTS  # a log from before the hooks says so


def test_stage_cost_counts_forward_only_and_reference_passes(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    n = model.num_parameters()
    stage = tmp_path / "stage"
    model.save_pretrained(stage)
    rows = [
        {"step": 1, "tokens": 5, "forward_only_tokens": 2, "reference_tokens": 5, "elapsed_s": 1},
        {"step": 2, "tokens": 7, "forward_only_tokens": 0, "reference_tokens": 7, "elapsed_s": 2},
    ]
    (stage / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cost = train_stage_cost(stage, "all", lora=False, processes=1)
    # 12 trained tokens (6N each), 2 forward-only (2N each), 12 through the reference (2N each).
    assert (cost["forward_tokens"], cost["backward_tokens"]) == (12 + 2 + 12, 12)
    assert (cost["forward_only_tokens"], cost["reference_tokens"]) == (2, 12)
    assert cost["flops"] == 6 * n * 12 + 2 * n * 2 + 2 * n * 12
    assert cost["token_count"] == TOKEN_COUNT_HOOKED


def test_token_tally_counts_only_the_passes_inside_active(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).requires_grad_(False)
    ids = torch.randint(3, model.config.vocab_size, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # 5 real tokens
    tally = TokenTally(model, reference)
    model(input_ids=ids, attention_mask=mask)  # outside active(): bookkeeping, not counted
    with tally.active():
        model(input_ids=ids, attention_mask=mask)  # trained: 5
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)  # forward only: 5
            reference(input_ids=ids, attention_mask=mask)  # reference: 5
        reference(input_ids=ids[:1], attention_mask=mask[:1])  # reference: 3
    assert tally.take() == {"tokens": 5, "forward_only_tokens": 5, "reference_tokens": 8}
    assert tally.take() == {"tokens": 0, "forward_only_tokens": 0, "reference_tokens": 0}
    tally.close()
    with tally.active():
        model(input_ids=ids, attention_mask=mask)  # hooks removed
    assert tally.take()["tokens"] == 0


def test_estimate_within_tolerance_of_flop_counter(tiny_model_dir):
    """The formula against FlopCounterMode on one step (2 x 16 tokens, every token real).

    The tied embedding is counted once in N and once by the counter (the output layer's
    matmul; the lookup costs none); what the formula leaves out is the attention-score matmuls,
    small at 16 tokens. Stated tolerance: 2% (seen: 0.5% here, 0.03% for SmolLM2-135M's
    architecture at 128 tokens, docs/cost.md).
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32")
    n = model.num_parameters()
    ids = torch.randint(3, model.config.vocab_size, (2, 16))
    measured = measured_step_flops(model, ids, torch.ones_like(ids))
    estimate = train_flops(n, n, ids.numel())
    assert measured > 0
    assert abs(estimate - measured) / measured < 0.02


def test_cost_command_bad_input(tmp_path, capsys):
    assert main(["cost", str(tmp_path)]) == 2
    assert "no run record" in capsys.readouterr().err


# LoRA r=4 on every linear layer of the tiny Llama (hidden 32, 4 heads of 8, 2 KV heads, MLP
# 64): per layer q, o 4x32 + 32x4 = 256 each; k, v 4x32 + 16x4 = 192 each; gate, up
# 4x32 + 64x4 = 384 each; down 4x64 + 32x4 = 384. 2048 per layer, 4096 for the two layers.
LORA_R4_PARAMS = 4096


def test_lora_estimate_within_tolerance_of_flop_counter(tiny_model_dir):
    """Unmerged adapters while training: (4 * (N_base + N_lora) + 2 * N_lora) * tokens.

    Stated tolerance 5%: with frozen embeddings nothing upstream of layer 0 needs a gradient,
    so layer 0's q/k/v projections (base and LoRA A) get no input gradient, which the formula
    counts. That is 1 layer in 2 here (seen: +3.9% at r=4, +3.8% at r=8) and 1 in 30 for
    SmolLM2-135M (+0.23% at r=8, 128 tokens; docs/cost.md).
    """
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from unlearn_bench.config import LoraSettings
    from unlearn_bench.train.lora import apply_lora

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32")
    n_base = model.num_parameters()
    model = apply_lora(model, LoraSettings(r=4, alpha=8.0))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == LORA_R4_PARAMS
    ids = torch.randint(3, model.config.vocab_size, (2, 16))
    measured = measured_step_flops(model, ids, torch.ones_like(ids))
    estimate = train_flops(n_base + LORA_R4_PARAMS, LORA_R4_PARAMS, ids.numel())
    assert abs(estimate - measured) / measured < 0.05
    # Counting every parameter as trained would overstate by far more than the tolerance.
    full = train_flops(n_base + LORA_R4_PARAMS, n_base + LORA_R4_PARAMS, ids.numel())
    assert (full - measured) / measured > 0.2


def test_lora_stage_cost_counts_the_saved_adapter(tiny_model_dir):
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from unlearn_bench.config import LoraSettings, UnlearnConfig
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.tasks import find_task, load_task_data
    from unlearn_bench.train.stages import StageInputs, unlearn

    n_base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).num_parameters()
    spec = parse_task(find_task("synthetic_people"))
    ucfg = UnlearnConfig(method="grad_ascent", lr=1e-3, batch_size=2, max_steps=2,
                         lora=LoraSettings(r=4, alpha=8.0))  # fmt: skip
    inputs = StageInputs(str(tiny_model_dir), "tiny", spec, load_task_data(spec, None), 0)
    path = unlearn(inputs, ucfg).path
    cost = train_stage_cost(path, "all", lora=True, processes=1)
    assert (cost["n_total"], cost["n_trained"]) == (n_base + LORA_R4_PARAMS, LORA_R4_PARAMS)
    tokens = cost["forward_tokens"]
    assert tokens > 0
    assert cost["flops"] == (4 * (n_base + LORA_R4_PARAMS) + 2 * LORA_R4_PARAMS) * tokens
    assert "adapters" in cost["lora_n"] and "flops_withheld" not in cost


def test_evaluation_tokens_are_counted_through_the_cache(tiny_model_dir):
    """Positions through the evaluated model: a scored request is one pass over context +
    continuation; greedy generation of k tokens for a batch of prompts is one pass over the
    left-padded prompts then k - 1 one-token passes per row; a cached repeat costs nothing."""
    from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
    from unlearn_bench.backends.cache import CachedBackend
    from unlearn_bench.backends.fake import FakeBackend
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.train.cost import eval_counter, eval_stage_cost

    inner = HFBackend(str(tiny_model_dir), batch_size=4, progress=False)
    backend = CachedBackend(inner)
    counter = eval_counter(backend)
    assert counter is not None
    tok = inner.tokenizer
    context, continuation = "The capital of France is", " Paris."
    backend.logprobs([ScoreRequest(context, continuation)])
    expected = len(tok(context, add_special_tokens=False).input_ids) + len(
        tok(continuation, add_special_tokens=False).input_ids
    )
    assert counter.forward_only == expected
    prompts = ["What is the capital of France?", "Who wrote it?"]
    backend.generate([GenerateRequest(p, 5) for p in prompts])
    widest = max(len(tok(p).input_ids) for p in prompts)
    expected += 2 * widest + 2 * (5 - 1)
    assert counter.forward_only == expected
    backend.generate([GenerateRequest(p, 5) for p in prompts])  # served by the cache
    assert (counter.forward_only, counter.trained) == (expected, 0)
    cost = eval_stage_cost(str(tiny_model_dir), 1.0, counter)
    # Tied embeddings: N = every parameter, the table counted once as the output layer.
    n = inner.model.num_parameters()
    assert cost["n_counted"] == n and cost["forward_tokens"] == expected
    assert cost["flops"] == 2 * n * expected and "flops_withheld" not in cost
    assert eval_counter(FakeBackend("fake-model")) is None
    withheld = eval_stage_cost(str(tiny_model_dir), 1.0, None)
    assert withheld["flops"] is None and "process" in withheld["flops_withheld"]
