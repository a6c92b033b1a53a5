"""Published reference tables: strict loading, transcription cross-checks, and our runs beside
them with differences computed by hand."""

import math
from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.compare import comparison_lines, load_published, to_markdown
from unlearn_bench.leaderboard.rows import rows_from_records
from unlearn_bench.runs import find_runs

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "leaderboards" / "published"
RUNS = ROOT / "tests" / "fixtures" / "runs"
TOFU10 = PUBLISHED / "open_unlearning_tofu_llama32_1b_forget10.yaml"


@pytest.mark.parametrize("path", sorted(PUBLISHED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_published_table_loads_and_names_its_source(path):
    table = load_published(path)
    assert table.name == path.stem
    assert table.source.paper and table.source.table and table.source.model
    numbers = [v for row in table.rows for v in row.values.values() if v is not None]
    if table.status in ("transcribed", "transcribed from secondary sources"):
        assert numbers and table.source.url
    else:
        assert numbers == []  # structure only: nothing invented
    if table.status == "transcribed from secondary sources":
        assert table.source.via  # the documents the numbers came through are named


def test_tofu_forget10_agrees_with_spec_figures():
    # SPEC.md quotes the same table rounded (FQ / MU): an independent check of the transcription.
    spec = {
        "Finetuned": (1.7e-21, 0.60), "Retain": (1.0, 0.59), "GradAscent": (1e-239, 0.0),
        "GradDiff": (1e-239, 0.49), "NPO": (0.02, 0.46), "SimNPO": (2.5e-203, 0.54),
        "RMU": (3.2e-15, 0.59), "IdkDPO": (4.6e-12, 0.23),
    }  # fmt: skip
    table = load_published(TOFU10)
    assert {r.method for r in table.rows} == set(spec)
    for row in table.rows:
        fq, mu = spec[row.method]
        assert float(f"{row.values['forget_quality']:.1e}") == pytest.approx(
            float(f"{fq:.1e}"), rel=0.05
        )
        assert row.values["model_utility"] == pytest.approx(mu, abs=0.005)


def test_muse_news_agrees_with_spec_figures():
    table = load_published(PUBLISHED / "open_unlearning_muse_news.yaml")
    values = {r.method: r.values for r in table.rows}
    assert values["Finetuned"] == {
        "forget_knowmem_ROUGE": 0.64, "forget_verbmem_ROUGE": 0.58, "privleak": -99.81,
        "retain_knowmem_ROUGE": 0.56,
    }  # fmt: skip
    assert values["NPO"]["privleak"] == -86.0 and values["Retain"]["privleak"] == 0


def _yao(name):
    table = load_published(PUBLISHED / f"yao2023_llmu_{name}.yaml")
    return {(r.method, r.model): r.values for r in table.rows}


def test_yao_harmful_agrees_with_the_second_secondary_source():
    # The YAML follows the lecture notes; the independent reading notes give harmful rates
    # (unlearned, unseen, percent) and utility rewards for these 27 cells: they must agree.
    notes = {
        ("Original", "OPT-1.3B"): (47, 53, -3.599), ("GA", "OPT-1.3B"): (1, 3, -3.838),
        ("GA+Mismatch", "OPT-1.3B"): (6, 7, -2.982),
        ("Original", "OPT-2.7B"): (52.5, 52.5, -3.610), ("GA", "OPT-2.7B"): (1.5, 4, -3.281),
        ("GA+Mismatch", "OPT-2.7B"): (3, 4, -2.959),
        ("Original", "Llama 2 (7B)"): (54, 51.5, -3.338), ("GA", "Llama 2 (7B)"): (2, 1, -4.252),
        ("GA+Mismatch", "Llama 2 (7B)"): (1, 3, -3.438),
    }  # fmt: skip
    values = _yao("harmful")
    for key, (unlearned, unseen, reward) in notes.items():
        got = values[key]
        assert (got["harmful_rate_unlearned"], got["harmful_rate_unseen"]) == (unlearned, unseen)
        assert got["utility_reward"] == reward
    # GA collapses fluency to NM on the OPT models (the paper's "not meaningful" mark)
    assert values[("GA", "OPT-1.3B")]["fluency_one_harmful_set"] == "NM"
    assert len(values) == 12  # 4 methods x 3 models


def test_yao_copyright_agrees_with_the_bar_chart_readings():
    # The lecture notes read leak rates (unlearned / unseen, percent) off the slides' bar chart.
    chart = {"OPT-1.3B": (15, 20), "OPT-2.7B": (74, 70), "Llama 2 (7B)": (81, 81)}
    values = _yao("copyright")
    for model, (unlearned, unseen) in chart.items():
        original, ga = values[("Original", model)], values[("GA", model)]
        assert (original["leak_rate_unlearned"], original["leak_rate_unseen"]) == (
            unlearned,
            unseen,
        )
        assert (ga["leak_rate_unlearned"], ga["leak_rate_unseen"]) == (0, 0)
    # GA+Mismatch: the same lecture notes' bar-chart readings only (0 / 0, 0 / 0, '~1' / '~1')
    readings = {"OPT-1.3B": (0, 0), "OPT-2.7B": (0, 0), "Llama 2 (7B)": (1, 1)}
    for model, (unlearned, unseen) in readings.items():
        got = values[("GA+Mismatch", model)]
        assert (got["leak_rate_unlearned"], got["leak_rate_unseen"]) == (unlearned, unseen)


def _table(tmp_path, status="transcribed from secondary sources", via="notes X", value="NM"):
    path = tmp_path / "t.yaml"
    path.write_text(
        f"name: t\nbenchmark: b\nstatus: {status}\n"
        f"source: {{paper: p, table: t, model: m, url: u, via: {via!r}}}\n"
        "metrics: [{name: mu, ours: model_utility}, {name: fl}]\n"
        "rows: [{method: NPO, model: Big-7B, match: {method: npo}, source_quality: secondary,"
        f" values: {{mu: 0.5, fl: {value}}}, note: from a slide}}]\n"
    )
    return path


def test_secondary_tables_carry_their_caveat_model_and_nm_marks(tmp_path):
    table = load_published(_table(tmp_path))
    rows = [r for r in rows_from_records(find_runs(RUNS)) if r.task == "toy_tofu"]
    text = to_markdown(table, rows, "toy_tofu")
    assert "**Caveat: transcribed from secondary sources.**" in text and "through notes X" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| NPO (Big-7B) | npo "))
    # model_utility of the fixture NPO run is 0.55: 0.55 - 0.5 = +0.05; fl has no counterpart of
    # ours, so it is one published column showing the source's NM mark, with no difference
    assert line.endswith("| 0.5000 | 0.5500 | +0.05 | NM |")
    assert "fl published (ours: no counterpart)" in text
    assert "- NPO (Big-7B): from a slide" in text and "- NM: not meaningful" in text
    nm = comparison_lines(table, rows)[0]["cells"]["fl"]
    assert nm == (None, None, None)  # NM never enters a difference


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"via": ""}, "needs source.via"),
        ({"value": "n/a"}, "must be a number or 'NM'"),
        ({"status": "numbers not transcribed"}, "numbers given but status"),
    ],
)
def test_secondary_tables_are_validated(tmp_path, kwargs, message):
    with pytest.raises(UnlearnBenchError, match=message):
        load_published(_table(tmp_path, **kwargs))


def test_differences_against_fixture_runs_by_hand():
    table = load_published(TOFU10)
    rows = [r for r in rows_from_records(find_runs(RUNS)) if r.task == "toy_tofu"]
    lines = {
        (ln["method"], ln["row"].hparams if ln["row"] else None): ln
        for ln in comparison_lines(table, rows)
    }
    npo = lines[("NPO", "lr=1e-05 ep=5 bs=4 beta=0.1")]["cells"]
    # forget quality is compared in log10: log10(0.6) - log10(0.02) = log10(30) = 1.47712...
    assert npo["forget_quality"] == (0.02, 0.6, pytest.approx(1.4771212547))
    # model utility absolute: 0.55 - 0.46 = 0.09
    assert npo["model_utility"][2] == pytest.approx(0.09)
    target = lines[("Finetuned", "ft lr=0.0001 ep=5")]["cells"]
    assert target["forget_quality"][2] == pytest.approx(math.log10(1e-05) - math.log10(1.66e-21))
    # two of our grad_ascent rows (two learning rates) both face GradAscent; GradDiff has none
    assert ("GradAscent", "lr=2e-05 ep=5 bs=4") in lines
    assert lines[("GradDiff", None)]["cells"]["model_utility"] == (0.49, None, None)


def test_scale_converts_published_units_to_ours(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\nbenchmark: b\nstatus: transcribed\n"
        "source: {paper: p, table: t, model: m, url: u}\n"
        "metrics: [{name: km, ours: knowmem_forget, scale: 100}]\n"
        "rows: [{method: NPO, match: {method: npo, label: npo}, source_quality: primary,"
        " values: {km: 0.45}}]\n"
    )
    rows = [r for r in rows_from_records(find_runs(RUNS)) if r.task == "toy_muse"]
    lines = comparison_lines(load_published(path), rows)
    scal2 = next(ln for ln in lines if ln["row"] and "size=2" in ln["row"].hparams)
    assert scal2["cells"]["km"] == (45.0, 45.0, 0.0)  # 0.45 x 100 vs our 45


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status: done", "status must be one of"),
        ("oops: 1", "unknown key 'oops'"),
        ("status: numbers not transcribed", "numbers given but status"),
    ],
)
def test_published_tables_are_validated_strictly(tmp_path, text, message):
    base = {
        "name": "t", "benchmark": "b", "status": "transcribed",
        "source": "{paper: p, table: t, model: m}", "metrics": "[{name: a}]",
        "rows": "[{method: M, match: {role: target}, source_quality: primary, values: {a: 0.5}}]",
    }  # fmt: skip
    key, value = text.split(": ", 1)
    base[key] = value
    path = tmp_path / "t.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in base.items()))
    with pytest.raises(UnlearnBenchError, match=message):
        load_published(path)


def test_cli_lists_compares_and_refuses_untranscribed_tables(tmp_path, capsys):
    assert main(["compare"]) == 0
    assert "yao2023_llmu_harmful" in capsys.readouterr().out
    out_file = tmp_path / "cmp.md"
    args = ["compare", "open_unlearning_tofu_llama32_1b_forget10", "--runs-dir", str(RUNS)]
    assert main([*args, "--task", "toy_tofu", "--out", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert out_file.read_text() == printed
    assert (
        "| NPO | npo lr=1e-05 ep=5 bs=4 beta=0.1 (toy-a/npo) | 0.0200 | 0.6000 | +1.48 |" in printed
    )
    assert main(args) == 2  # the table's own task, tofu_forget10, has no runs here
    assert "no finished runs of task 'tofu_forget10'" in capsys.readouterr().err
    structure_only = tmp_path / "structure_only.yaml"
    structure_only.write_text(
        "name: structure_only\nbenchmark: b\nstatus: numbers not transcribed\n"
        "source: {paper: p, table: t, model: m}\nmetrics: [{name: a}]\n"
        "rows: [{method: M, match: {role: target}, source_quality: not_entered, values: {}}]\n"
    )
    untranscribed = [
        "compare",
        str(structure_only),
        "--runs-dir",
        str(RUNS),
        "--task",
        "toy_tofu",
    ]
    assert main(untranscribed) == 2
    assert "no numbers to compare" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(PUBLISHED.glob("*.yaml")), ids=lambda p: p.stem)
def test_our_keys_name_metrics_the_task_produces(path):
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.tasks import find_task

    table = load_published(path)
    try:
        spec = parse_task(find_task(table.task))
    except UnlearnBenchError:
        pytest.skip(f"task {table.task} is not in this checkout yet")
    produced = set(spec.derived) | {
        f"{name}/{metric}" for name, es in spec.evaluation.items() for metric in es.metrics
    }
    for metric in table.metrics:
        assert metric.ours is None or metric.ours in produced, (metric.name, metric.ours)


def test_muse_page_marks_the_rouge_columns_as_differently_tokenised():
    # open-unlearning's MUSE ROUGE stems (Porter); MUSE's code and ours do not.
    table = load_published(PUBLISHED / "open_unlearning_muse_news.yaml")
    page = to_markdown(table, [], "muse_news")
    header = next(line for line in page.splitlines() if line.startswith("| published method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    marked = [i for i, c in enumerate(cells) if c == "Δ (different ROUGE tokenisation)"]
    rouge = ["forget_knowmem_ROUGE", "forget_verbmem_ROUGE", "retain_knowmem_ROUGE"]
    assert len(marked) == 3
    assert all(cells[i - 2].startswith(name) for i, name in zip(marked, rouge, strict=True))
    assert "Δ" in cells  # privleak's difference carries no mark
    assert "Porter stemmer" in page
