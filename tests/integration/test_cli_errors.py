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


def test_protocol_is_an_ordinary_subcommand(capsys, tmp_path):
    # Unknown protocol: one line, exit 2, before any run folder is made.
    config = tmp_path / "run.yaml"
    config.write_text(f"task: muse_news\nruns_dir: {tmp_path / 'runs'}\n")
    code, err = _run(["protocol", "--config", str(config), "--protocol", "scaling"], capsys)
    assert code == 2 and err.count("\n") == 0 and "unknown protocol 'scaling'" in err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit) as exc:  # argparse: a required flag missing
        main(["protocol", "--protocol", "scalability"])
    assert exc.value.code == 2 and "--config" in capsys.readouterr().err


def test_reference_command_reports_a_bad_log_in_one_line(capsys, tmp_path):
    log = tmp_path / "log.json"
    log.write_text("[1, 2]")
    argv = [
        "reference",
        "import",
        str(log),
        "--task",
        "tofu_forget10",
        "--out",
        str(tmp_path / "r"),
    ]
    code, err = _run(argv, capsys)
    assert code == 2 and err.count("\n") == 0 and "must be a JSON object" in err
    assert not (tmp_path / "r").exists()
