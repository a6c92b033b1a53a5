"""The paper's compute claims (leaderboards/published/compute): the shipped file loads, and a
claim whose number and source quality disagree is refused in one line."""

from pathlib import Path

import pytest
import yaml

from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.compute_page import load_paper, papers_for

CLAIMS = Path(__file__).resolve().parents[2] / "leaderboards" / "published" / "compute"


def test_shipped_claims_load_and_only_the_2_percent_has_a_number():
    (paper,) = papers_for("llmu_harmful", CLAIMS)
    numbered = {c.name: c.value for c in paper.claims if c.value is not None}
    assert numbered == {"unlearning_share_of_rlhf_time": 2.0}
    assert all(c.source_quality == "not_entered" for c in paper.claims if c.value is None)
    assert papers_for("tofu_forget01", CLAIMS) == []


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ({"value": 5, "source_quality": "not_entered"}, "only them"),
        ({"source_quality": "primary"}, "only them"),
        ({"value": 5, "source_quality": "hearsay"}, "source_quality is 'hearsay'"),
    ],
)
def test_a_claim_disagreeing_with_its_quality_is_refused(tmp_path, claim, message):
    path = tmp_path / "c.yaml"
    data = {"name": "x", "task": "t", "paper": "p",
            "claims": [{"name": "c", "statement": "s", **claim}]}  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UnlearnBenchError, match=message):
        load_paper(path)
