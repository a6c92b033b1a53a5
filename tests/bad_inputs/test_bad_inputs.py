"""A corpus of malformed inputs driven through the real CLI (``unlearn_bench.cli.main``).

For each: a non-zero exit, no traceback, a one-line message naming the problem, no finished
record, and an earlier run and the response cache left byte for byte as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_checks import assert_one_clear_line
from cli_checks import file_tree as _tree

from unlearn_bench.cli import main

TASK = "synthetic_people"
GOOD_TASK_HEAD = "name: x\nversion: 1\ndata: {source: builtin:synthetic_people}\n"


def _config(body: str, head: str = "backend: fake\n") -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        path = tmp / "config.yaml"
        path.write_text(f"task: {TASK}\n{head}{body}")
        return ["run", "--config", str(path)]

    return make


def _flags(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["run", "--task", TASK, "--backend", "fake", *extra]


def _binary_config(tmp: Path) -> list[str]:
    path = tmp / "config.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81binary\x00\x9c")
    return ["run", "--config", str(path)]


def _binary_task(tmp: Path) -> list[str]:
    path = tmp / "task.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8")
    return ["run", "--task", str(path), "--backend", "fake"]


def _directory_config(tmp: Path) -> list[str]:
    (tmp / "config.yaml").mkdir()
    return ["run", "--config", str(tmp / "config.yaml")]


def _directory_task(tmp: Path) -> list[str]:
    (tmp / "task.yaml").mkdir()
    return ["run", "--task", str(tmp / "task.yaml"), "--backend", "fake"]


def _remote_code_task(tmp: Path) -> list[str]:
    path = tmp / "task.yaml"
    path.write_text(
        GOOD_TASK_HEAD
        + "scorers: {harm: {kind: classifier, model: ./evil, trust_remote_code: true}}\n"
        + "evaluation: {forget: {split: forget, metrics: [probability]}}\n"
    )
    return ["run", "--task", str(path), "--backend", "fake"]


def _empty_config(tmp: Path) -> list[str]:
    path = tmp / "config.yaml"
    path.write_text("")
    return ["run", "--config", str(path)]


def _list_config(tmp: Path) -> list[str]:
    path = tmp / "config.yaml"
    path.write_text("- task\n- model\n")
    return ["run", "--config", str(path)]


def _eval_set_limit_zero(tmp: Path) -> list[str]:
    shipped = Path(__file__).resolve().parents[2] / "tasks" / TASK / f"{TASK}.yaml"
    path = tmp / "task.yaml"
    path.write_text(shipped.read_text().replace("    limit: 24\n", "    limit: 0\n"))
    assert "limit: 0" in path.read_text()
    # A hub id the fake backend never loads: without the check, the case costs no real model.
    return ["eval", "--task", str(path), "--backend", "fake", "--model", "nobody/none"]


def _eval_set_no_metrics(tmp: Path) -> list[str]:
    shipped = Path(__file__).resolve().parents[2] / "tasks" / TASK / f"{TASK}.yaml"
    path = tmp / "task.yaml"
    text = shipped.read_text()
    head, _, rest = text.partition("    metrics: [")
    path.write_text(head + "    metrics: []" + rest.partition("]")[2])
    assert "metrics: []" in path.read_text()
    return ["eval", "--task", str(path), "--backend", "fake", "--model", "nobody/none"]


def _empty_eval_split(tmp: Path) -> list[str]:
    from tofu_fixtures import write_tofu_fixture

    data = write_tofu_fixture(tmp / "tofu")
    (data / "world_facts_perturbed.json").write_text("[]")
    # Backend hf (TOFU needs grad): the check comes before any model is loaded.
    return ["eval", "--task", "tofu_forget01", "--backend", "hf", "--model", "nobody/none",
            "--data-dir", str(data)]  # fmt: skip


def _data_file_directory(tmp: Path) -> list[str]:
    from tofu_fixtures import write_tofu_fixture

    data = write_tofu_fixture(tmp / "tofu")
    (data / "forget01_perturbed.json").unlink()
    (data / "forget01_perturbed.json").mkdir()
    return ["eval", "--task", "tofu_forget01", "--backend", "hf", "--model", "nobody/none",
            "--data-dir", str(data)]  # fmt: skip


# (name, argv builder, words the one-line error must contain)
def _relearn_overlap(tmp: Path) -> list[str]:
    # relearn trains on forget[:4] and evaluates forget[2:]: items 2 and 3 are in both
    base = Path(__file__).resolve().parents[2] / "tasks/synthetic_people/synthetic_people.yaml"
    task = tmp / "overlap.yaml"
    task.write_text(
        f"include: {base}\nname: overlap\n"
        'probes: {relearn: {train: "forget[:4]", evaluate: "forget[2:]"}}\n'
    )
    path = tmp / "config.yaml"
    path.write_text(f"task: {task}\nbackend: fake\nprobes: [relearn-5]\n")
    return ["run", "--config", str(path)]


def _probe_task_without_metric(tmp: Path) -> list[str]:
    # MedForget declares no probes section; refused on the task file, before its data is read
    path = tmp / "config.yaml"
    path.write_text(f"task: medforget\nbackend: fake\ndata_dir: {tmp / 'nodata'}\n"
                    "probes: [prefix]\n")  # fmt: skip
    return ["run", "--config", str(path)]


CASES: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    ("lr zero", _config("unlearn: [{method: grad_ascent, lr: 0}]\n"), ["unlearn.lr", "0"]),
    ("lr negative", _config("finetune: {lr: -0.001}\n"), ["finetune.lr", "-0.001"]),
    ("lr nan", _config("unlearn: [{method: grad_ascent, lr: .nan}]\n"), ["unlearn.lr", "nan"]),
    ("batch zero", _config("finetune: {batch_size: 0}\n"), ["finetune.batch_size"]),
    ("max_steps zero", _config("unlearn: [{method: npo, max_steps: 0}]\n"), ["max_steps"]),
    ("epochs zero", _config("unlearn: [{method: npo, epochs: 0}]\n"), ["unlearn.epochs"]),
    ("epochs inf", _config("finetune: {epochs: .inf}\n"), ["finetune.epochs", "inf"]),
    ("grad_accum zero", _config("finetune: {grad_accum: 0}\n"), ["grad_accum"]),
    ("eval batch zero", _config("eval: {batch_size: 0}\n"), ["eval.batch_size"]),
    ("limit negative", _flags("--limit", "-1"), ["eval.limit", "-1"]),
    ("limit zero", _flags("--limit", "0"), ["eval.limit", "0"]),
    ("run id escapes", _flags("--run-id", "../../x"), ["run id", "../../x"]),
    ("run id absolute", _flags("--run-id", "/tmp/x"), ["run id", "/tmp/x"]),
    ("run id dot-dot", _flags("--run-id", ".."), ["run id", ".."]),
    ("run id nested escape", _flags("--run-id", "a/../../x"), ["run id", "a/../../x"]),
    ("label escapes", _config("unlearn: [{method: npo, label: ../up}]\n"), ["label", "../up"]),
    ("config not text", _binary_config, ["config.yaml"]),
    ("task not text", _binary_task, ["task.yaml"]),
    ("config is a directory", _directory_config, ["config.yaml", "directory"]),
    ("task is a directory", _directory_task, ["task.yaml", "directory"]),
    ("config not a mapping", _list_config, ["mapping"]),
    ("task enables remote code", _remote_code_task, ["trust_remote_code", "task file"]),
    ("eval set limit zero", _eval_set_limit_zero, ["evaluation.retain.limit", "0"]),
    ("data file is a directory", _data_file_directory, ["forget01_perturbed.json", "directory"]),
    (
        "baseline without safe data",
        _config("unlearn: [{method: sft_safe}]\n"),
        ["sft_safe", "safe responses", "synthetic_people"],
    ),
    ("dpo without pairs", _config("unlearn: [{method: dpo_safe}]\n"), ["dpo_safe", "safe"]),
    (
        "ppo with lora",
        _config("unlearn: [{method: ppo_rlhf, lora: {r: 2}}]\n"),
        ["ppo_rlhf", "does not support lora"],
    ),
    ("ppo without pairs", _config("unlearn: [{method: ppo_rlhf}]\n"), ["ppo_rlhf", "safe"]),
    ("eval set empty", _empty_eval_split, ["'world_facts'", "world_facts_perturbed", "empty"]),
    # Round 2 (a careless user again): each of these ended in a traceback, some after training.
    ("seed beyond 32 bits", _config("seed: 4294967296\n"), ["seed", "2**32", "4294967296"]),
    ("dtype unknown", _config("dtype: float8\n"), ["dtype", "'float8'"]),
    (
        "device absent",
        _config("device: cuda:99\n", "model: nobody/none\n"),
        ["'cuda:99'", "not available"],
    ),
    ("device misspelt", _config("device: gpu\n"), ["device", "'gpu'"]),
    ("model empty", _config('model: ""\n'), ["model is empty"]),
    ("config empty", _empty_config, ["missing required key 'task'"]),
    ("eval set without metrics", _eval_set_no_metrics, ["evaluation.forget.metrics is empty"]),
    # Robustness probes (issue 15): refused before any model is trained or loaded.
    ("probe unknown", _config("probes: [jitter]\n"), ["unknown probe 'jitter'"]),
    ("probe bit width", _config("probes: [int3]\n"), ["int3", "not 3 bits"]),
    (
        "probe leak k beyond n",
        _config("probes: [leak-4]\nprobe_settings: {leak_k: [8]}\n"),
        ["k=8", "1..n=4"],
    ),
    ("probe relearn overlap", _relearn_overlap, ["relearn split overlaps the evaluated items"]),
    ("probe task undeclared", _probe_task_without_metric, ["medforget", "probes.metric"]),
]


@pytest.fixture
def earlier(tmp_path: Path, isolated_cache: Path) -> tuple[Path, Path]:
    """An earlier run group and a cache file that no bad input may touch."""
    runs = tmp_path / "runs"
    (runs / "old" / "grad_ascent").mkdir(parents=True)
    (runs / "old" / "GROUP.json").write_text('{"status": "finished"}')
    (runs / "old" / "grad_ascent" / "header.json").write_text('{"status": "finished"}')
    isolated_cache.mkdir(parents=True, exist_ok=True)
    (isolated_cache / "responses.sqlite").write_bytes(b"earlier cache bytes")
    return runs, isolated_cache


@pytest.mark.parametrize("name,build,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(
    name: str,
    build: Callable[[Path], list[str]],
    words: list[str],
    tmp_path: Path,
    earlier: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs, cache = earlier
    before = (_tree(runs), _tree(cache))
    work = tmp_path / "inputs"
    work.mkdir()
    argv = build(work) + ["--runs-dir", str(runs)]
    code = main(argv)
    assert_one_clear_line(code, capsys.readouterr(), words, name)
    assert (_tree(runs), _tree(cache)) == before
    assert not (tmp_path.parent / "x").exists()  # "../../x" from runs/ would land there
