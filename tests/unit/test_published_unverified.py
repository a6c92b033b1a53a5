"""A published row we cannot vouch for is shown, labelled unverified, and gets no difference."""

import dataclasses
from pathlib import Path

from unlearn_bench.leaderboard.compare import comparison_lines, load_published
from unlearn_bench.leaderboard.rows import Cell, Row

TABLE = Path(__file__).resolve().parents[2] / "leaderboards" / "published"


def _target_row(leak: float) -> Row:
    cell = Cell(leak, None, 40, False, 1)
    metrics = {"unlearned_passages/leak_rate_bleu10": cell,
               "unseen_passages/leak_rate_bleu10": cell}  # fmt: skip
    return Row("llmu_copyright", "m", "target", "target", "", ["g/target"], [0], metrics)


def test_opt_1_3b_original_row_is_unverified_and_left_out_of_differences():
    table = load_published(TABLE / "yao2023_llmu_copyright.yaml")
    (opt,) = [r for r in table.rows if r.method == "Original" and r.model == "OPT-1.3B"]
    assert opt.unverified  # 15 / 20 vs 78 / 76: looks swapped with Finetuning (issue 13)
    lines = comparison_lines(table, [_target_row(1.0)])
    (line,) = [ln for ln in lines if ln["method"].startswith("Original (OPT-1.3B)")]
    assert "unverified" in line["method"]
    # published 15% shown as 0.15, ours 1.0, and no difference taken
    assert line["cells"]["leak_rate_unlearned"][:2] == (0.15, 1.0)
    assert line["cells"]["leak_rate_unlearned"][2] is None
    verified = dataclasses.replace(table, rows=[dataclasses.replace(opt, unverified=False)])
    (plain,) = comparison_lines(verified, [_target_row(1.0)])
    assert plain["cells"]["leak_rate_unlearned"][2] == 1.0 - 0.15
