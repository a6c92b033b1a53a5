import pytest

from unlearn_bench.config import FinetuneConfig, RunConfig, UnlearnConfig
from unlearn_bench.errors import UnlearnBenchError


def test_defaults_and_nested_build():
    cfg = RunConfig.from_dict(
        {"task": "t", "unlearn": [{"method": "npo", "args": {"beta": 0.2}}], "finetune": None}
    )
    assert cfg.finetune is None
    assert cfg.unlearn == [UnlearnConfig(method="npo", args={"beta": 0.2})]
    assert RunConfig(task="t").finetune == FinetuneConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"task": "t", "modle": "x"}, "unknown key 'modle' in config"),
        (
            {"task": "t", "unlearn": [{"methd": "ga"}]},
            r"unknown key 'methd' in config.unlearn\[0\]",
        ),
        ({"task": "t", "seed": "zero"}, "config.seed must be int"),
        ({"task": "t", "finetune": {"lr": "fast"}}, "config.finetune.lr must be a number"),
        ({"task": "t", "eval": 3}, "config.eval must be a mapping"),
        ({}, "task"),
    ],
)
def test_bad_config_is_a_one_line_error(data, message):
    with pytest.raises(UnlearnBenchError, match=message) as info:
        RunConfig.from_dict(data)
    assert "\n" not in str(info.value)


def test_yaml_numbers_without_a_dot_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: t\nfinetune: {lr: 1e-5}\n")  # PyYAML reads 1e-5 as a string
    assert RunConfig.from_yaml(path).finetune.lr == pytest.approx(1e-5)


def test_yaml_duplicate_keys_are_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: a\ntask: b\n")
    with pytest.raises(UnlearnBenchError, match="duplicate key 'task'"):
        RunConfig.from_yaml(path)


def test_kwargs_cli_and_yaml_give_the_same_object(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: t\nmodel: m\nseed: 3\n")
    from_yaml = RunConfig.from_yaml(path)
    assert from_yaml == RunConfig.from_dict({"task": "t", "model": "m", "seed": 3})
    assert from_yaml == RunConfig(task="t", model="m", seed=3)
