"""Robustness probes on the tiny model: each transformation checked directly, then end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unlearn_bench.cli import main
from unlearn_bench.config import RunConfig
from unlearn_bench.data.sources import synthetic_people
from unlearn_bench.runs import RunRecord

TASK_OPTIONS = {"n_people": 20, "qa_per_person": 4, "seed": 0, "forget_fraction": 0.1}


def _config(model_dir: Path, tmp_path: Path, probes: list[str], **extra) -> dict:
    return {
        "task": "synthetic_people",
        "model": str(model_dir),
        "runs_dir": str(tmp_path / "runs"),
        "leaderboards_dir": str(tmp_path / "lb"),
        "run_id": "g",
        "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 8},
        "unlearn": [{"method": "grad_ascent", "epochs": 2, "lr": 1e-2, "batch_size": 4}],
        "eval": {"limit": 8, "batch_size": 4},
        "probes": probes,
        **extra,
    }


def _write(data: dict, tmp_path: Path) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_every_probe_end_to_end(tiny_model_dir, tmp_path, isolated_cache):
    probes = ["relearn-2", "int4", "paraphrase", "prefix", "leak-4"]
    config = _config(tiny_model_dir, tmp_path, probes)
    assert main(["run", "--config", _write(config, tmp_path)]) == 0
    group = tmp_path / "runs" / "g"
    forget = synthetic_people(dict(TASK_OPTIONS), None)["forget"]

    def samples(label: str) -> list[dict]:
        record = RunRecord(group / label)
        assert record.is_finished()
        return [s for s in record.read_samples("synthetic_people") if s["eval_set"] == "forget"]

    # Relearning: trained on the task's forget[:4] only, evaluated on forget[4:] only.
    relearn = RunRecord(group / "grad_ascent@relearn-2")
    assert [s["question"] for s in samples("grad_ascent@relearn-2")] == [
        r["question"] for r in forget[4:]
    ]
    recipe = json.loads((Path(relearn.header["model_path"]) / "RECIPE.json").read_text())
    assert (recipe["split"], recipe["n"], recipe["train"]["max_steps"]) == ("relearn", 4, 2)
    assert relearn.header["probe"]["of"] == "grad_ascent"
    # Quantization is named in the backend identity (so the cache keeps it apart).
    transform = RunRecord(group / "target@int4").header["backend"]["transform"]
    assert (transform["quantizer"], transform["bits"]) == ("optimum-quanto", 4)
    from importlib.metadata import version

    assert transform["quantizer_version"] == version("optimum-quanto")
    # The tiny model's linear layers read 32 or 64 inputs: quanto groups only rows wider than
    # 128 (optimum/quanto/nn/qmodule.py), so these get one scale per output row, recorded as 0.
    assert transform["group_sizes"] == [0]
    # The target is quantized the same way (the recovery's reference).
    unlearned = RunRecord(group / "grad_ascent@int4").header["backend"]["transform"]
    assert unlearned == transform
    # Paraphrase: the evaluated question is the record's paraphrased question.
    para = samples("grad_ascent@paraphrase")
    assert [s["question"] for s in para] == [r["paraphrased_question"] for r in forget]
    assert [s["source_question"] for s in para] == [r["question"] for r in forget]
    # Leak@k: 4 scored samples per prompt; Leak@1 is their mean, Leak@4 their maximum.
    leak = samples("grad_ascent@leak-4")
    assert all(len(s["obs"]["samples"]) == 4 == len(s["scores"]["leak"]) for s in leak)
    results = RunRecord(group / "grad_ascent@leak-4").results()["synthetic_people"]
    by_hand_1 = sum(sum(s["scores"]["leak"]) / 4 for s in leak) / len(leak)
    by_hand_4 = sum(max(s["scores"]["leak"]) for s in leak) / len(leak)
    assert results["forget/leak@1_rouge_l_recall"]["value"] == pytest.approx(by_hand_1)
    assert results["forget/leak@4_rouge_l_recall"]["value"] == pytest.approx(by_hand_4)
    # Recovery is an ordinary metric of the probed unlearned record (regress can guard it).
    prefixed = RunRecord(group / "grad_ascent@prefix").results()["synthetic_people"]
    assert "forget/recovery_rouge_l_recall" in prefixed
    assert prefixed["forget/recovery_rouge_l_recall"]["higher_is_better"] is False
    table = (tmp_path / "lb" / "synthetic_people.robustness.md").read_text()
    assert "| grad_ascent |" in table and "relearn-2: recovery" in table
    from unlearn_bench.leaderboard.robustness import probe_curves
    from unlearn_bench.runs import find_runs

    curves = probe_curves(find_runs(tmp_path / "runs"), "synthetic_people")
    assert curves["relearn"]["grad_ascent"]["x"] == [0, 2]  # before, after 2 steps
    # The target's line starts at 0 steps too: its unprobed score on the items relearning
    # evaluated (forget[4:]), the plain mean of its stored per-item scores.
    held_out = {r["question"] for r in forget[4:]}
    target_before = [s["scores"]["rouge_l_recall"] for s in samples("target")
                     if s["question"] in held_out]  # fmt: skip
    assert len(target_before) == 4
    assert curves["relearn"]["target"]["x"] == [0, 2]
    assert curves["relearn"]["target"]["y"][0] == pytest.approx(sum(target_before) / 4)
    assert "survives every probe" in table
    assert curves["leak"]["grad_ascent"]["x"] == [1, 2, 4]
    assert curves["leak"]["grad_ascent"]["y"][0] == pytest.approx(by_hand_1)
    assert (tmp_path / "lb" / "synthetic_people.probes.png").is_file()
    # A finished group is probed again from the command line: finished probes are kept.
    assert main(["probe", str(group), "--probe", "prefix",
                 "--leaderboards-dir", str(tmp_path / "lb")]) == 0  # fmt: skip


def test_leak_samples_differ_and_repeat_by_seed(tiny_model_dir):
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.probes.base import ProbeContext
    from unlearn_bench.probes.leak import sample_generations
    from unlearn_bench.tasks import find_task

    config = RunConfig.from_dict({"task": "synthetic_people", "eval": {"batch_size": 3}})
    spec = parse_task(find_task("synthetic_people"))
    ctx = ProbeContext(config, spec, {})
    records = synthetic_people(dict(TASK_OPTIONS), None)["forget"][:2]

    def draw() -> list[list[str]]:
        backend = HFBackend(str(tiny_model_dir), progress=False)
        out = sample_generations(ctx, backend, {"forget": records}, 5)
        return [s["obs"]["samples"] for s in out]

    first, second = draw(), draw()
    assert first == second  # reproducible by seed
    # Samples of one prompt differ, also across the backend's batches of 3.
    assert all(len(set(texts)) > 1 for texts in first)
    assert first[0][:2] != first[0][3:5]


def test_prefix_reaches_every_context():
    from unlearn_bench.backends.base import GenerateRequest, ScoreRequest
    from unlearn_bench.probes.prefix import PrefixedBackend

    seen: list = []

    class Recorder:
        def generate(self, requests):
            seen.extend(requests)
            return ["x"] * len(requests)

        def logprobs(self, requests):
            seen.extend(requests)
            return [None] * len(requests)

    backend = PrefixedBackend(Recorder(), "Sure, here is the answer:")
    backend.generate([GenerateRequest("<user>Q<assistant>", 8)])
    backend.logprobs([ScoreRequest("<user>Q<assistant>", "Paris")])
    assert seen[0].prompt == "<user>Q<assistant>Sure, here is the answer:"
    assert seen[1].context == "<user>Q<assistant>Sure, here is the answer:"
    assert seen[1].continuation == " Paris"


def _levels(weight, group: int) -> int:
    """Most distinct values in any group of ``group`` consecutive inputs of a row."""
    rows = weight.reshape(weight.shape[0], -1, group)
    return max(len(set(g.tolist())) for row in rows for g in row)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_weights_take_the_stated_levels(bits):
    import torch

    from unlearn_bench.probes.quantize import quantize_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 4, bias=False))
    original = model[0].weight.detach().clone()
    info = quantize_weights(model, bits, [])
    weight = model[0].qweight.dequantize().float()
    group = 1024 if bits == 8 else 128  # int8: per output channel; int4: groups of 128 inputs
    assert info["group_sizes"] == ([0] if bits == 8 else [128])
    assert _levels(original, group) == group  # random weights: every value distinct
    assert _levels(weight, group) <= 2**bits
    assert _levels(weight, 1024) > 2**bits or bits == 8  # int4 groups have their own scales
    assert not torch.equal(weight, original)
    assert (weight - original).abs().max() < original.abs().max() / (2 ** (bits - 2))


@pytest.mark.parametrize(
    ("probes", "extra", "message"),
    [
        (["jitter"], {}, "unknown probe 'jitter'"),
        (["int3"], {}, "not 3 bits"),
        (["leak-4"], {"probe_settings": {"leak_k": [8]}}, "k=8 is outside 1..n=4"),
        (["relearn-5"], {"task": "OVERLAP"}, "relearn split overlaps the evaluated items"),
    ],
)
def test_bad_probe_input_fails_before_any_work(
    tiny_model_dir, tmp_path, capsys, probes, extra, message
):
    if extra.get("task") == "OVERLAP":
        task = tmp_path / "tasks" / "overlap.yaml"
        task.parent.mkdir()
        base = Path(__file__).resolve().parents[2] / "tasks/synthetic_people/synthetic_people.yaml"
        task.write_text(
            f"include: {base}\nname: overlap\n"
            'probes: {relearn: {train: "forget[:4]", evaluate: "forget[2:]"}}\n'
        )
        extra = {"task": str(task)}
    config = _config(tiny_model_dir, tmp_path, probes, **extra)
    assert main(["run", "--config", _write(config, tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_regress_guards_a_probe_recovery(tiny_model_dir, tmp_path, capsys):
    # A task whose probe metric is the forget probability (defined on a random tiny model).
    base = Path(__file__).resolve().parents[2] / "tasks/synthetic_people/synthetic_people.yaml"
    task = tmp_path / "prob.yaml"
    task.write_text(f"include: {base}\nname: prob\nprobes: {{metric: probability}}\n")
    config = _config(tiny_model_dir, tmp_path, ["prefix"], task=str(task))
    assert main(["run", "--config", _write(config, tmp_path)]) == 0
    runs, baseline = str(tmp_path / "runs"), tmp_path / "baseline.yaml"
    assert main(["regress", "--runs-dir", runs, "--write-baseline", str(baseline)]) == 0
    data = yaml.safe_load(baseline.read_text())
    (rid,) = [r for r in data["rows"] if "grad_ascent@prefix" in r]
    entry = data["rows"][rid]["forget/recovery_probability"]
    assert entry["better"] == "lower" and entry["value"] is not None
    assert main(["regress", "--runs-dir", runs, "--baseline", str(baseline)]) == 0
    # A reviewer's bound below the current recovery: the check fails on that metric.
    entry["value"] -= 0.5
    baseline.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["regress", "--runs-dir", runs, "--baseline", str(baseline)]) == 1
    assert "recovery_probability" in capsys.readouterr().out


def test_int4_group_size_follows_the_input_width():
    # SmolLM2-135M's hidden width is 576: 128 does not divide it; the largest multiple of 32
    # below 128 that does is 96 (576 = 6 x 96), so each row has 6 groups of at most 16 levels.
    import torch

    from unlearn_bench.probes.quantize import quantize_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(576, 3, bias=False))
    info = quantize_weights(model, 4, [])
    assert info["group_sizes"] == [96]
    weight = model[0].qweight.dequantize().float()
    assert _levels(weight, 96) <= 16
    assert _levels(weight, 576) > 16  # each group of 96 has its own scale and shift


def test_prefix_reaches_the_prompts_the_task_builds():
    # The prefix probe's own path (open_backend, eval_sets, evaluate -> the task's prompt
    # builder) on the fake backend, whose chat template is "<user>Q</user><assistant>".
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.probes.base import ProbeContext, make_probe
    from unlearn_bench.tasks import find_task, load_task_data

    config = RunConfig.from_dict({"task": "synthetic_people", "backend": "fake"})
    spec = parse_task(find_task("synthetic_people"))
    ctx = ProbeContext(config, spec, load_task_data(spec, None))
    probe = make_probe("prefix")
    backend = probe.open_backend(ctx, "fake")
    prompts: list[str] = []
    contexts: list[str] = []
    generate, logprobs = backend.inner.generate, backend.inner.logprobs
    backend.inner.generate = lambda rs: prompts.extend(r.prompt for r in rs) or generate(rs)
    backend.inner.logprobs = lambda rs: contexts.extend(r.context for r in rs) or logprobs(rs)
    sets = probe.eval_sets(ctx)
    probe.evaluate(ctx, backend, sets)
    expected = {f"<user>{r['question']}</user><assistant>Sure, here is the answer:"
                for r in sets["forget"]}  # fmt: skip
    assert len(sets["forget"]) == 8 and len(expected) == 8
    assert set(prompts) == expected  # one greedy generation per forget question
    assert contexts and set(contexts) == expected  # every scored answer follows the prefix


def test_relearning_trains_only_on_the_declared_items(tiny_model_dir, monkeypatch):
    # Every example the training loop batches is recorded: relearn-3 on synthetic_people must
    # see only forget[:4] (the task file's probes.relearn.train), never forget[4:] (evaluated).
    import unlearn_bench.train.batches as batches
    import unlearn_bench.train.loop as loop
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.probes.base import ProbeContext, make_probe
    from unlearn_bench.tasks import find_task, load_task_data

    seen: list[str] = []
    real = batches.collate

    def recording(tokenizer, examples, max_length):
        seen.extend(e.prompt.context for e in examples)
        return real(tokenizer, examples, max_length)

    monkeypatch.setattr(batches, "collate", recording)
    monkeypatch.setattr(loop, "collate", recording)
    config = RunConfig.from_dict({"task": "synthetic_people", "model": str(tiny_model_dir)})
    spec = parse_task(find_task("synthetic_people"))
    ctx = ProbeContext(config, spec, load_task_data(spec, None))
    probe = make_probe("relearn-3")
    probe.check(ctx)
    probe.model_path(ctx, str(tiny_model_dir))
    forget = ctx.splits["forget"]
    evaluated = [r["question"] for r in probe.eval_sets(ctx)["forget"]]
    assert evaluated == [r["question"] for r in forget[4:]]
    assert len(seen) == 3 * 4  # 3 steps of the default relearn batch of 4
    for context in seen:
        assert [q for q in (r["question"] for r in forget[:4]) if q in context]
        assert not [q for q in evaluated if q in context]
