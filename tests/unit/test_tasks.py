import pytest

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data

BASE = """\
name: base_task
version: 2
data: {source: builtin:synthetic_people, options: {n_people: 10, qa_per_person: 2}}
evaluation:
  forget: {split: forget, metrics: [probability]}
"""


def test_shipped_task_parses_and_loads():
    spec = parse_task(find_task("synthetic_people"))
    assert spec.version == 1 and spec.prompt.style == "chat"
    splits = load_task_data(spec)
    assert len(splits["forget"]) == 8  # 10% of 20 people x 4 questions
    assert len(splits["holdout"]) == len(splits["forget"])


def test_include_deep_merges(tmp_path):
    (tmp_path / "_base.yaml").write_text(BASE)
    child = tmp_path / "child.yaml"
    child.write_text("include: _base.yaml\nname: child\ndata: {options: {n_people: 12}}\n")
    spec = parse_task(child)
    assert spec.name == "child" and spec.version == 2
    assert spec.data.source == "builtin:synthetic_people"
    assert spec.data.options == {"n_people": 12, "qa_per_person": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "extra_key: 1\n", "unknown key 'extra_key'"),
        (BASE + "name: again\n", "duplicate key 'name'"),
        (BASE.replace("probability", "nope"), "unknown metric 'nope'"),
        (BASE + "requires: [logprobs, telepathy]\n", "unknown capability 'telepathy'"),
        (BASE + "requires: [logprobs]\n" + "derived: [forget_quality]\n", None),
        (
            BASE.replace("[probability]", "[rouge_l_recall]") + "requires: [logprobs]\n",
            "needs \\['generate'\\]",
        ),
        (BASE.replace("builtin:synthetic_people", "hub:nowhere"), "unknown data source"),
        (BASE + "prompt: {style: freeform}\n", "prompt.style"),
        (BASE.replace("version: 2", "version: two"), "version must be int"),
    ],
)
def test_strict_validation(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    if message is None:
        assert parse_task(path).derived == ["forget_quality"]
        return
    with pytest.raises(UnlearnBenchError, match=message) as info:
        parse_task(path)
    assert "\n" not in str(info.value)


def test_missing_split_is_named(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(BASE.replace("split: forget", "split: forget99"))
    with pytest.raises(UnlearnBenchError, match="split 'forget99' not provided"):
        load_task_data(parse_task(path))


def test_fingerprint_changes_with_content(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(BASE)
    b.write_text(BASE.replace("n_people: 10", "n_people: 11"))
    assert parse_task(a).fingerprint() != parse_task(b).fingerprint()
