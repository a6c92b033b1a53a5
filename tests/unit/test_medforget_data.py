"""MedForget loader on synthetic parquet files of the published layout: records and validation."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from muse_fixtures import MEDFORGET_QA, png_bytes, write_medforget_dir

from unlearn_bench.data.medforget import LEVELS, medforget, task_type
from unlearn_bench.data.unavailable import is_unavailable
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.tasks import find_task, load_task_data


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Describe the finding.", "generation"),
        ("Which organ? A) lung B) heart C) liver", "classification"),
        ("Which organ? A) lung B) heart", "generation"),  # two options are not enough
        ("The [blank] is enlarged. A) lung B) heart C) liver", "cloze"),  # cloze wins
    ],
)
def test_task_type_follows_the_question_format(question, kind):
    assert task_type(question) == kind


def test_records_per_level_set_and_sub_task(tmp_path):
    splits = medforget({}, write_medforget_dir(tmp_path))
    names = {f"{lv}_{s}_{k}" for lv in LEVELS for s in ("forget", "retain")
             for k in ("generation", "classification", "cloze")}  # fmt: skip
    assert names <= set(splits)
    cloze = splits["patient_retain_cloze"]
    assert len(cloze) == 2  # two images, one cloze question each
    assert cloze[0]["answer"] == "left lung"  # a list answer is joined with spaces
    assert (cloze[0]["level"], cloze[0]["set"], cloze[0]["row"], cloze[0]["qa_index"]) == (
        "patient", "retain", 0, 2,
    )  # fmt: skip
    image = png_bytes((40 * 1, 100 * 1, 0))  # patient is level 1, retain set 1, row 0
    assert base64.b64decode(cloze[0]["_images"][0]) == image
    assert cloze[0]["image_sha256"] == hashlib.sha256(image).hexdigest()
    assert splits["study_forget_generation"][1]["question"] == MEDFORGET_QA[0]["Question"]
    for role in ("train_full", "train_retain", "train_forget"):
        assert is_unavailable(splits[role])
    with pytest.raises(UnlearnBenchError, match="text-only trainer"):
        len(splits["train_forget"])


def test_task_file_loads_with_the_data(tmp_path):
    spec = parse_task(find_task("medforget"))
    assert len(spec.evaluation) == 24 and "vision" in spec.requires
    splits = load_task_data(spec, write_medforget_dir(tmp_path))
    assert len(splits["section_forget_classification"]) == 2


def test_no_data_explains_where_it_comes_from():
    with pytest.raises(
        UnlearnBenchError, match="not public.*patient_level/\\{forget,retain\\}_set_all"
    ):
        medforget({}, None)


def test_every_problem_is_reported_in_one_line(tmp_path):
    import pandas as pd

    root = write_medforget_dir(tmp_path, levels=("institution", "patient", "study"))
    (root / "patient_level" / "retain_set_all.parquet").unlink()
    pd.DataFrame([{"image": {"bytes": b"not an image", "path": None},
                   "metadata": json.dumps([{"Question": "Q?"}])}]).to_parquet(
        root / "study_level" / "forget_set_all.parquet")  # fmt: skip
    pd.DataFrame([{"picture": b"x"}]).to_parquet(
        root / "institution_level" / "retain_set_all.parquet"
    )
    with pytest.raises(UnlearnBenchError) as info:
        medforget({}, root)
    message = str(info.value)
    assert "\n" not in message
    for problem in (
        "missing patient_level/retain_set_all.parquet",
        "missing section_level/forget_set_all.parquet",
        "institution_level/retain_set_all.parquet lacks column(s) image, metadata",
        "study_level/forget_set_all.parquet row 0: image bytes are not a readable image",
        "study_level/forget_set_all.parquet row 0: metadata[0] has no Answer",
    ):
        assert problem in message, problem


def test_metadata_may_be_a_list_column_and_bad_json_is_named(tmp_path):
    import pandas as pd

    folder = tmp_path / "patient_level"
    folder.mkdir()
    image = {"bytes": png_bytes((1, 2, 3)), "path": None}
    pd.DataFrame(
        [{"image": image, "metadata": [{"Question": "Q [blank]", "Answer": "A"}]}]
    ).to_parquet(folder / "forget_set_all.parquet")
    pd.DataFrame([{"image": image, "metadata": "{not json"}]).to_parquet(
        folder / "retain_set_all.parquet"
    )
    with pytest.raises(
        UnlearnBenchError, match="retain_set_all.parquet row 0: metadata is not JSON"
    ):
        medforget({"levels": ["patient"]}, tmp_path)
    pd.DataFrame([{"image": image, "metadata": "[]"}]).to_parquet(folder / "retain_set_all.parquet")
    with pytest.raises(UnlearnBenchError, match="non-empty list"):
        medforget({"levels": ["patient"]}, tmp_path)
    pd.DataFrame(
        [{"image": image, "metadata": json.dumps([{"Question": "Q?", "Answer": "B"}])}]
    ).to_parquet(folder / "retain_set_all.parquet")
    splits = medforget({"levels": ["patient"]}, tmp_path)
    assert splits["patient_forget_cloze"][0]["answer"] == "A"
    assert splits["patient_retain_generation"][0]["answer"] == "B"


def test_bad_options():
    with pytest.raises(UnlearnBenchError, match="unknown level 'ward'"):
        medforget({"levels": ["ward"]}, None)
    with pytest.raises(UnlearnBenchError, match="unknown option 'root'"):
        medforget({"root": "x"}, None)
