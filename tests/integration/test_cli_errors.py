"""Bad input: a one-line error naming the problem, a non-zero exit, no complete-looking result."""

import pytest

from unlearn_bench.cli import main


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_unknown_method(capsys, tmp_path):
    code, err = _run(
        [
            "run",
            "--task",
            "synthetic_people",
            "--method",
            "grad_assent",
            "--runs-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2
    assert err.count("\n") == 0 and "unknown method 'grad_assent'" in err and "grad_ascent" in err
    assert not list(tmp_path.iterdir())


def test_unknown_task(capsys):
    code, err = _run(["run", "--task", "no_such_task"], capsys)
    assert code == 2 and "unknown task 'no_such_task'" in err


def test_nonexistent_model_path(capsys, tmp_path):
    code, err = _run(
        [
            "run",
            "--task",
            "synthetic_people",
            "--model",
            str(tmp_path / "nope"),
            "--runs-dir",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "model path not found" in err
    assert not (tmp_path / "r").exists()


def test_malformed_task_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nversion: 1\ndata: {source: builtin:synthetic_people}\nevaluation: {forget: {split: forget, metrics: [probability]}}\nbogus: 1\n"
    )
    code, err = _run(["validate", str(bad)], capsys)
    assert code == 2 and "1 of 1 task files are invalid" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    code, err = _run(["run", "--task", str(broken)], capsys)
    assert code == 2 and "invalid YAML" in err and "\n" not in err


def test_unknown_metric_in_task(capsys, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(
        "name: x\nversion: 1\ndata: {source: builtin:synthetic_people}\nevaluation: {forget: {split: forget, metrics: [probabilty]}}\n"
    )
    code, err = _run(["run", "--task", str(bad)], capsys)
    assert (
        code == 2 and "unknown metric 'probabilty'" in err and "did you mean 'probability'" in err
    )


def test_empty_forget_split(capsys, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(
        "name: x\nversion: 1\ndata: {source: builtin:synthetic_people, options: {n_people: 4, forget_fraction: 0.0}}\n"
        "evaluation: {forget: {split: forget, metrics: [probability]}}\n"
    )
    code, err = _run(["run", "--task", str(bad), "--runs-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "forget" in err
    assert not (tmp_path / "r").exists()


def test_validate_all_shipped_tasks(capsys):
    code = main(["validate"])
    out = capsys.readouterr().out
    assert code == 0 and "synthetic_people" in out


@pytest.mark.parametrize(
    ("argv", "expected"), [(["ls"], "synthetic_people"), (["ls", "methods"], "grad_ascent")]
)
def test_ls(argv, expected, capsys):
    assert main(argv) == 0
    assert expected in capsys.readouterr().out


def test_task_requirements_refused_by_backend(capsys, tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text(
        "name: x\nversion: 1\ndata: {source: builtin:synthetic_people}\n"
        "requires: [logprobs, vocab_stats]\nevaluation: {forget: {split: forget, metrics: [probability]}}\n"
    )
    code, err = _run(
        ["run", "--task", str(task), "--backend", "fake", "--runs-dir", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "backend 'fake' lacks ['vocab_stats']" in err
    assert not (tmp_path / "r").exists()
