"""MUSE-News data source: local copies, the hub code path (on a local hub-layout folder), gaps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from muse_fixtures import article, write_muse_dir

from unlearn_bench.data.muse import PARTS, chunk_text, muse_news
from unlearn_bench.data.unavailable import UnavailableSplit, is_unavailable
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data


def test_chunk_text_by_hand():
    # "aaaa\n\nbbbb" is 10 characters > 9, so the second paragraph starts a new chunk.
    assert chunk_text("aaaa\n\nbbbb\n\ncc", 9) == ["aaaa", "bbbb\n\ncc"]
    assert chunk_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert chunk_text("a\n\n \n\nb", 100) == ["a\n\nb"]  # whitespace-only paragraphs dropped


def test_local_copy_gives_every_available_part(tmp_path):
    splits = muse_news({}, write_muse_dir(tmp_path))
    assert [r["question"] for r in splits["verbmem_forget"]] == [
        article(10 + i, 1) for i in range(3)
    ]
    assert splits["verbmem_forget"][0]["answer"] == article(20, 2)
    knowmem = splits["knowmem_forget"]
    assert knowmem[0] == {
        "question": "Where was author 0 born?",
        "answer": "In town 0",
        "icl": [
            {"question": "Where was author 100 born?", "answer": "In town 100"},
            {"question": "Where was author 101 born?", "answer": "In town 101"},
        ],
    }
    # The authors' file is retain2_qa.json; the hub calls the split retain_qa: both are read.
    assert splits["knowmem_retain"][0]["icl"][0]["answer"] == "In town 300"
    assert splits["privleak_holdout"][1] == {"question": "", "answer": article(51, 1)}
    # raw/forget: 4 articles of 3 short paragraphs, each under 1000 characters -> 4 chunks;
    # the empty 5th article is skipped.
    assert [r["article"] for r in splits["forget"]] == [0, 1, 2, 3]
    # scal/sust forget_1 are raw/forget upstream (the same file).
    assert splits["sust_forget_1"] == splits["forget"] == splits["scal_forget_1"]
    assert len(splits["sust_forget_3"]) == 2


def test_missing_raw_splits_say_what_needs_them(tmp_path):
    splits = muse_news({}, write_muse_dir(tmp_path))
    for name in ("retain1", "retain2", "holdout", "full", "scal_forget_2"):
        assert is_unavailable(splits[name]), name
    with pytest.raises(UnlearnBenchError, match=r"raw/retain1\.json.*retrained \(oracle\) model"):
        len(splits["retain1"])
    with pytest.raises(UnlearnBenchError, match="forget \\+ retain1 \\+ retain2"):
        list(splits["full"])
    with pytest.raises(UnlearnBenchError, match="scalability protocol"):
        splits["scal_forget_2"][:3]
    assert bool(splits["retain1"])  # never mistaken for an empty split


def test_task_loads_without_the_raw_retain_splits(tmp_path):
    spec = parse_task(find_task("muse_news"))
    splits = load_task_data(spec, write_muse_dir(tmp_path))
    assert isinstance(splits[spec.splits.retain], UnavailableSplit)
    assert len(splits["knowmem_forget"]) == 3
    full = muse_news({}, write_muse_dir(tmp_path / "full", with_retain=True))
    assert len(full["full"]) == len(full["forget"]) + len(full["retain1"]) + len(full["retain2"])


def test_bad_options_and_folders():
    with pytest.raises(UnlearnBenchError, match="unknown option 'chunk'"):
        muse_news({"chunk": 3}, None)
    with pytest.raises(UnlearnBenchError, match="train_chunk_chars"):
        muse_news({"train_chunk_chars": 5}, None)
    with pytest.raises(UnlearnBenchError, match="not found"):
        muse_news({}, Path("/nonexistent/muse"))


def _write_hub_layout(local: Path, hub: Path) -> None:
    """The hub repository's layout: one parquet per (config, split) and configs in README.md."""
    import pandas as pd

    configs: dict[str, list[str]] = {}
    for config, split, stems, kind in PARTS.values():
        source = next(
            (
                local / f"{s}{x}"
                for s in stems
                for x in (".json", ".json.gz")
                if (local / f"{s}{x}").is_file()
            ),
            None,
        )
        if source is None or split in configs.get(config, []):
            continue
        import gzip

        raw = source.read_bytes()
        rows = json.loads(gzip.decompress(raw) if source.suffix == ".gz" else raw)
        frame = pd.DataFrame(rows if kind in ("qa", "verbmem") else {"text": rows})
        (hub / config).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(hub / config / f"{split}-00000-of-00001.parquet")
        configs.setdefault(config, []).append(split)
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: {config}/{s}-*.parquet" for s in splits]
    (hub / "README.md").write_text("\n".join(lines + ["---", ""]))


def test_hub_code_path_reads_the_same_records_as_the_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    local = write_muse_dir(tmp_path / "local", with_retain=True)
    for k in (1, 2, 3, 4):  # the hub has every scal and sust split
        (local / "scal").mkdir(exist_ok=True)
        (local / f"scal/forget_{k}.json").write_text(
            json.dumps([article(500 + j) for j in range(k)])
        )
    (local / "sust/forget_1.json").write_text((local / "raw/forget.json").read_text())
    hub = tmp_path / "hub"
    _write_hub_layout(local, hub)
    from_hub = muse_news({"repo": str(hub)}, None)
    from_local = muse_news({}, local)
    assert set(from_hub) == set(from_local)
    for name in from_hub:
        assert list(from_hub[name]) == list(from_local[name]), name


@pytest.mark.shared_data
def test_shared_local_copy(shared_data):
    splits = muse_news({}, shared_data / "muse_news")
    assert len(splits["verbmem_forget"]) == 100
    assert len(splits["knowmem_forget"]) == len(splits["knowmem_retain"]) == 100
    assert all(len(r["icl"]) == 10 for r in splits["knowmem_forget"])
    assert {len(splits[f"privleak_{s}"]) for s in ("forget", "retain", "holdout")} == {100}
    # 889 articles, one of them empty upstream: 888 articles in the chunks.
    assert len({r["article"] for r in splits["forget"]}) == 888
    assert all(len(r["answer"]) <= 1000 for r in splits["forget"])
    assert len({r["article"] for r in splits["sust_forget_4"]}) == 887
    for name in ("retain1", "retain2", "holdout", "full", "scal_forget_2"):
        assert is_unavailable(splits[name]), name
