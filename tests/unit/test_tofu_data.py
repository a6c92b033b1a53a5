"""TOFU data source: local folders (with the concatenated-arrays quirk), the hub path, counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tofu_fixtures import write_tofu_fixture

from unlearn_bench.data.tofu import CONFIGS, load_tofu, normalise_record, read_json_values
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data

# Published record counts (Maini et al. 2024; locuslab/TOFU card; open-unlearning holdouts).
PUBLISHED_COUNTS = {
    "full": 4000, "retain90": 3600, "retain95": 3800, "retain99": 3960,
    "forget01": 40, "forget05": 200, "forget10": 400,
    "forget01_perturbed": 40, "forget05_perturbed": 200, "forget10_perturbed": 400,
    "retain_perturbed": 400, "real_authors": 100, "real_authors_perturbed": 100,
    "world_facts": 117, "world_facts_perturbed": 117,
    "holdout01": 40, "holdout05": 200, "holdout10": 400,
}  # fmt: skip


def test_json_streams_in_every_layout(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    layouts = {
        "one_array.json": json.dumps(rows),
        "back_to_back.json": json.dumps(rows[:2])
        + json.dumps(rows[2:4])
        + "\n"
        + json.dumps(rows[4:]),
        "lines.json": "\n".join(json.dumps(r) for r in rows) + "\n",
    }
    for name, text in layouts.items():
        (tmp_path / name).write_text(text)
        assert read_json_values(tmp_path / name) == rows, name


def test_broken_json_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('[{"question": "q"}] [{"oops"')
    with pytest.raises(UnlearnBenchError, match="invalid JSON") as info:
        read_json_values(tmp_path / "bad.json")
    assert "\n" not in str(info.value)


def test_normalise_fills_paraphrase_for_real_authors_only() -> None:
    real = normalise_record(
        {"question": "Who?", "answer": "Me", "perturbed_answer": ["You", "Them"]}, "x", 0
    )
    assert real["paraphrased_answer"] == "Me" and real["paraphrase_is_answer"] is True
    forget = normalise_record(
        {"question": "Q", "answer": "A", "paraphrased_answer": "P", "perturbed_answer": ["W"]},
        "x",
        0,
    )
    assert forget["paraphrased_answer"] == "P" and "paraphrase_is_answer" not in forget
    plain = normalise_record({"question": "Q", "answer": "A"}, "full", 3)
    assert "paraphrased_answer" not in plain


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"answer": "A"}, "'question'"),
        ({"question": "Q", "answer": ""}, "'answer'"),
        ({"question": "Q", "answer": "A", "perturbed_answer": "W"}, "perturbed_answer"),
        ({"question": "Q", "answer": "A", "perturbed_answer": []}, "perturbed_answer"),
        (["not", "a", "dict"], "expected an object"),
    ],
)
def test_bad_records_are_refused(record: object, message: str) -> None:
    with pytest.raises(UnlearnBenchError, match=message):
        normalise_record(record, "forget10", 7)


def test_local_fixture_loads_and_quirky_files_concatenate(tmp_path: Path) -> None:
    root = write_tofu_fixture(tmp_path / "tofu")
    splits = load_tofu({"configs": ["full", "retain99", "forget01"]}, root)
    # full.json holds 20 rows in arrays of 7, 7 and 6: all of them must come back, in order.
    assert len(splits["full"]) == 20 and splits["full"][-2:] == splits["forget01"]
    assert splits["retain99"] == splits["full"][:18]


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    root = write_tofu_fixture(tmp_path / "tofu")
    with pytest.raises(UnlearnBenchError, match="'retain90' not found"):
        load_tofu({"configs": ["retain90"]}, root)
    with pytest.raises(UnlearnBenchError, match="unknown config 'forget20'"):
        load_tofu({"configs": ["forget20"]}, root)
    with pytest.raises(UnlearnBenchError, match="unknown option 'split'"):
        load_tofu({"split": "x"}, root)
    with pytest.raises(UnlearnBenchError, match="data directory not found"):
        load_tofu({"configs": ["full"]}, tmp_path / "nowhere")


def _hub_layout(root: Path, files: dict[str, Path]) -> Path:
    """A folder laid out like the hub repository: data files plus README ``configs``."""
    root.mkdir(parents=True)
    lines = ["---", "configs:"]
    for config, source in files.items():
        (root / f"{config}.json").symlink_to(source.resolve())
        lines += [f"- config_name: {config}", f"  data_files: {config}.json"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return root


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    datasets = pytest.importorskip("datasets")
    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return cache


def test_hub_path_runs_load_dataset_on_a_local_repo(tmp_path: Path, datasets_cache: Path) -> None:
    local = write_tofu_fixture(tmp_path / "tofu")
    names = ["forget01_perturbed", "real_authors_perturbed", "holdout01"]
    repo = _hub_layout(tmp_path / "repo", {n: local / f"{n}.json" for n in names})
    from_hub = load_tofu({"repo": str(repo), "configs": names}, None)
    from_dir = load_tofu({"configs": names}, local)
    assert from_hub == from_dir
    assert datasets_cache.is_dir()  # the real datasets.load_dataset ran and cached


def test_hub_path_names_an_unknown_repo(tmp_path: Path, datasets_cache: Path) -> None:
    with pytest.raises(UnlearnBenchError, match="cannot load .* config 'full'") as info:
        load_tofu({"repo": str(tmp_path / "no-such-repo"), "configs": ["full"]}, None)
    assert "\n" not in str(info.value)


def test_task_files_load_the_fixture(tmp_path: Path) -> None:
    root = write_tofu_fixture(tmp_path / "tofu")
    spec = parse_task(find_task("tofu_forget01"))
    splits = load_task_data(spec, root)
    assert spec.splits.retain == "retain99" and spec.evaluation["holdout"].split == "holdout01"
    assert len(splits["forget01"]) == 2 and len(splits["forget01_perturbed"]) == 2


@pytest.mark.shared_data
def test_real_local_tofu_has_the_published_counts(shared_data: Path) -> None:
    assert set(PUBLISHED_COUNTS) == set(CONFIGS)
    splits = load_tofu({}, shared_data / "tofu")
    assert {name: len(rows) for name, rows in splits.items()} == PUBLISHED_COUNTS
    full = splits["full"]
    # forget XX = the last authors of full, retain XX = the rest (Maini et al. 2024).
    for pct, n in (("01", 40), ("05", 200), ("10", 400)):
        assert splits[f"forget{pct}"] == full[-n:]
        assert splits[f"retain{100 - int(pct)}"] == full[:-n]
        assert [r["question"] for r in splits[f"forget{pct}_perturbed"]] == [
            r["question"] for r in full[-n:]
        ]
    assert all(len(r["perturbed_answer"]) == 5 for r in splits["forget10_perturbed"])
    assert all(r["paraphrase_is_answer"] for r in splits["world_facts_perturbed"])
    # holdout01 is a prefix of holdout05, which is a prefix of holdout10 (PROVENANCE.md).
    assert splits["holdout05"][:40] == splits["holdout01"]
    assert splits["holdout10"][:200] == splits["holdout05"]


@pytest.mark.shared_data
def test_real_files_through_the_hub_path(
    shared_data: Path, tmp_path: Path, datasets_cache: Path
) -> None:
    # The single-array files of the local copy, served as a hub-style repository.
    names = ["forget10_perturbed", "world_facts_perturbed", "holdout10"]
    repo = _hub_layout(tmp_path / "repo", {n: shared_data / "tofu" / f"{n}.json" for n in names})
    from_hub = load_tofu({"repo": str(repo), "configs": names}, None)
    assert {n: len(v) for n, v in from_hub.items()} == {
        "forget10_perturbed": 400,
        "world_facts_perturbed": 117,
        "holdout10": 400,
    }
    assert from_hub == load_tofu({"configs": names}, shared_data / "tofu")
