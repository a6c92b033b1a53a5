"""The robustness table's verdict column: a model whose forgetting survives every probe."""

from __future__ import annotations

from unlearn_bench.cli import main
from unlearn_bench.leaderboard.robustness import survives, to_markdown


def test_verdict_names_the_worst_probe_against_the_bar():
    probes = ["int4", "relearn-20"]
    # recoveries 0.10 and 0.15 are both below 0.2: survives; the worst is relearn-20's 0.15
    assert survives({"int4": (0.5, 0.10), "relearn-20": (0.4, 0.15)}, probes) == (
        "**yes** (worst 0.150, relearn-20)"
    )
    # 0.25 >= 0.2: int4 brings the knowledge back
    assert survives({"int4": (0.5, 0.25), "relearn-20": (0.4, 0.15)}, probes) == (
        "no (worst 0.250, int4)"
    )
    # exactly at the bar is not below it
    assert survives({"int4": (0.5, 0.2), "relearn-20": (0.4, 0.0)}, probes).startswith("no")
    # the target has no recovery (it is the reference)
    assert survives({"int4": (0.9, None), "relearn-20": (0.9, None)}, probes) == "-"
    # an undefined or missing recovery cannot vouch for the forgetting
    assert survives({"int4": (0.5, 0.1)}, probes) == "? (no recovery: relearn-20)"


def test_markdown_has_the_verdict_column():
    table = {"metric": "rouge_l_recall", "probes": ["int4"],
             "rows": {"target": {"int4": (0.9, None)}, "npo": {"int4": (0.3, 0.05)}}}  # fmt: skip
    lines = to_markdown("t", table).splitlines()
    assert lines[-4] == (
        "| model | survives every probe (recovery < 0.2) | int4: rouge_l_recall | int4: recovery |"
    )
    assert lines[-3] == "|---|---|---|---|"
    assert lines[-2] == "| target | - | 0.900 | - |"
    assert lines[-1] == "| npo | **yes** (worst 0.050, int4) | 0.300 | 0.050 |"


def test_written_table_of_the_hand_made_group(tmp_path):
    from viewer_fixtures import write_probe_group

    write_probe_group(tmp_path / "runs")
    assert main(["leaderboard", "--runs-dir", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "lb")]) == 0  # fmt: skip
    text = (tmp_path / "lb" / "synthetic_people.robustness.md").read_text()
    # hand-worked recoveries in tests/viewer_fixtures.py: grad_ascent 0.061 / 0.824, npo
    # 0.278 / 0.667; neither stays below 0.2 under relearn-20
    assert "| grad_ascent | no (worst 0.824, relearn-20) |" in text
    assert "| npo | no (worst 0.667, relearn-20) |" in text
    assert "| target | - |" in text
