"""Every published row says how far its numbers can be vouched for (``source_quality``).

Rows from a single secondary source, or disputed ones, are shown and labelled unverified, and
get no difference unless ``compare --include-unverified`` asks for it. Expected differences are
worked out here from the fixture records' numbers.
"""

import dataclasses
from pathlib import Path

import pytest
import yaml

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.compare import comparison_lines, load_published
from unlearn_bench.leaderboard.rows import Cell, Row

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "leaderboards" / "published"
RUNS = ROOT / "tests" / "fixtures" / "runs"
QUALITIES = {"primary", "secondary", "single_secondary", "disputed", "not_entered"}


@pytest.mark.parametrize("path", sorted(PUBLISHED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_row_names_its_source_quality(path):
    raw = yaml.safe_load(path.read_text())  # the file itself, not what the loader made of it
    for row in raw["rows"]:
        assert row.get("source_quality") in QUALITIES, (path.stem, row["method"])
        numbers = [v for v in row["values"].values() if v is not None]
        assert (row["source_quality"] == "not_entered") == (not numbers), row["method"]
        if raw["status"] != "transcribed":
            assert row["source_quality"] != "primary", row["method"]
    load_published(path)  # and the loader accepts it


def _quality(name):
    table = load_published(PUBLISHED / f"{name}.yaml")
    return {(r.method, r.model): r.source_quality for r in table.rows}


def test_the_qualities_the_sources_support():
    # open-unlearning's pages are the authors' own: primary.
    for name in ("muse_news", "tofu_llama32_1b_forget01", "tofu_llama32_1b_forget05",
                 "tofu_llama32_1b_forget10"):  # fmt: skip
        assert set(_quality(f"open_unlearning_{name}").values()) == {"primary"}
    # The hallucination table rests on one secondary document: every numeric row unverified.
    hallucination = _quality("yao2023_llmu_hallucination")
    assert hallucination.pop(("Finetuning", "")) == "not_entered"
    assert set(hallucination.values()) == {"single_secondary"} and len(hallucination) == 6
    # Copyright: Original / GA leak rates are in both documents; OPT-1.3B's Original and
    # Finetuning rows look swapped (15 / 20 vs 78 / 76), so both are disputed.
    copyright_ = _quality("yao2023_llmu_copyright")
    assert copyright_[("Original", "OPT-1.3B")] == "disputed"
    assert copyright_[("Finetuning", "OPT-1.3B")] == "disputed"
    assert copyright_[("Original", "OPT-2.7B")] == "secondary"
    assert copyright_[("GA", "Llama 2 (7B)")] == "secondary"
    assert copyright_[("GA+Mismatch", "OPT-2.7B")] == "single_secondary"  # a bar reading only
    # Harmful: Finetuning rows are in the lecture notes only.
    harmful = _quality("yao2023_llmu_harmful")
    assert {m for m, q in harmful.items() if q == "single_secondary"} == {
        ("Finetuning", "OPT-1.3B"), ("Finetuning", "OPT-2.7B"), ("Finetuning", "Llama 2 (7B)")
    }  # fmt: skip


def _write(tmp_path, rows, status="transcribed from secondary sources"):
    path = tmp_path / "t.yaml"
    path.write_text(
        f"name: t\nbenchmark: b\ntask: toy_tofu\nstatus: {status}\n"
        "source: {paper: p, table: t, model: m, url: u, via: notes X}\n"
        f"metrics: [{{name: mu, ours: model_utility}}]\nrows: [{', '.join(rows)}]\n"
    )
    return path


@pytest.mark.parametrize(
    ("row", "status", "message"),
    [
        ("{method: M, match: {role: target}, values: {mu: 0.5}}", None, "source_quality is missing"),
        ("{method: M, match: {role: target}, source_quality: good, values: {mu: 0.5}}", None,
         "source_quality is 'good'; give one of primary"),
        ("{method: M, match: {role: target}, source_quality: not_entered, values: {mu: 0.5}}",
         None, "'not_entered' is for rows without numbers"),
        ("{method: M, match: {role: target}, source_quality: secondary, values: {}}", None,
         "'not_entered' is for rows without numbers"),
        ("{method: M, match: {role: target}, source_quality: primary, values: {mu: 0.5}}", None,
         "'primary' in a table transcribed from secondary sources"),
        ("{method: M, match: {role: target}, source_quality: disputed, values: {mu: 0.5}}",
         "transcribed", "a disputed row needs a note"),
    ],
)  # fmt: skip
def test_a_row_without_a_sound_source_quality_is_refused(tmp_path, row, status, message):
    path = _write(tmp_path, [row], status or "transcribed from secondary sources")
    with pytest.raises(UnlearnBenchError, match=message):
        load_published(path)


def _target_row(leak: float) -> Row:
    cell = Cell(leak, None, 40, False, 1)
    metrics = {"unlearned_passages/leak_rate_bleu10": cell,
               "unseen_passages/leak_rate_bleu10": cell}  # fmt: skip
    return Row("llmu_copyright", "m", "target", "target", "", ["g/target"], [0], metrics)


def test_disputed_opt_1_3b_original_row_gets_a_difference_only_on_request():
    table = load_published(PUBLISHED / "yao2023_llmu_copyright.yaml")
    lines = comparison_lines(table, [_target_row(1.0)])
    (line,) = [ln for ln in lines if ln["method"].startswith("Original (OPT-1.3B)")]
    assert line["method"].endswith("[unverified: disputed, see the note; no difference taken]")
    # published 15% shown as 0.15, ours 1.0, and no difference taken
    assert line["cells"]["leak_rate_unlearned"] == (0.15, 1.0, None)
    (other,) = [ln for ln in lines if ln["method"] == "Original (OPT-2.7B)"]
    assert other["cells"]["leak_rate_unlearned"][2] == pytest.approx(1.0 - 0.74)  # secondary
    asked = comparison_lines(table, [_target_row(1.0)], include_unverified=True)
    (line,) = [ln for ln in asked if ln["method"].startswith("Original (OPT-1.3B)")]
    assert "difference shown on request" in line["method"]
    assert line["cells"]["leak_rate_unseen"][2] == pytest.approx(1.0 - 0.20)
    (opt,) = [r for r in table.rows if r.method == "Original" and r.model == "OPT-1.3B"]
    vouched = dataclasses.replace(
        table, rows=[dataclasses.replace(opt, source_quality="secondary")]
    )
    (plain,) = comparison_lines(vouched, [_target_row(1.0)])
    assert plain["method"] == "Original (OPT-1.3B)"
    assert plain["cells"]["leak_rate_unlearned"][2] == pytest.approx(1.0 - 0.15)


def test_compare_cli_leaves_single_secondary_rows_out_unless_included(tmp_path, capsys):
    # Fixture records: toy-a/target model_utility 0.6, toy-a/npo model_utility 0.55.
    path = _write(tmp_path, [
        "{method: Finetuned, match: {role: target}, source_quality: secondary, values: {mu: 0.5}}",
        "{method: NPO, match: {method: npo}, source_quality: single_secondary, values: {mu: 0.5}}",
    ])  # fmt: skip
    args = ["compare", str(path), "--runs-dir", str(RUNS)]
    assert main(args) == 0
    page = capsys.readouterr().out
    target = next(ln for ln in page.splitlines() if ln.startswith("| Finetuned |"))
    assert target.endswith("| 0.5000 | 0.6000 | +0.1 |")  # 0.6 - 0.5
    npo = next(ln for ln in page.splitlines() if ln.startswith("| NPO [unverified"))
    assert npo.startswith("| NPO [unverified: single secondary source; no difference taken] |")
    assert npo.endswith("| 0.5000 | 0.5500 | - |")
    assert "compare --include-unverified puts them in" in page
    assert main([*args, "--include-unverified"]) == 0
    page = capsys.readouterr().out
    npo = next(ln for ln in page.splitlines() if ln.startswith("| NPO [unverified"))
    assert "difference shown on request" in npo
    assert npo.endswith("| 0.5000 | 0.5500 | +0.05 |")  # 0.55 - 0.5
    assert "shown because --include-unverified was given" in page


def test_compare_lists_each_tables_unverified_rows(capsys):
    # Counted from the YAML files: hallucination 6 single_secondary of 7 rows; copyright
    # 2 disputed + 5 single_secondary of 12; harmful 3 single_secondary of 12; TOFU none.
    assert main(["compare"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " unverified=6/7 " in lines["yao2023_llmu_hallucination"]
    assert " unverified=7/12 " in lines["yao2023_llmu_copyright"]
    assert " unverified=3/12 " in lines["yao2023_llmu_harmful"]
    assert " unverified=0/8 " in lines["open_unlearning_tofu_llama32_1b_forget10"]
