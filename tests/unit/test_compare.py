"""Published reference tables: strict loading, transcription cross-checks, and our runs beside
them with differences computed by hand."""

import math
from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.compare import comparison_lines, load_published
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard_rows import rows_from_records
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
    if table.status == "transcribed":
        assert numbers and table.source.url
    else:
        assert numbers == []  # structure only: nothing invented


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
        "rows: [{method: NPO, match: {method: npo, label: npo}, values: {km: 0.45}}]\n"
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
        "rows": "[{method: M, match: {role: target}, values: {a: 0.5}}]",
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
    untranscribed = [
        "compare",
        "yao2023_llmu_harmful",
        "--runs-dir",
        str(RUNS),
        "--task",
        "toy_tofu",
    ]
    assert main(untranscribed) == 2
    assert "no numbers to compare" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(PUBLISHED.glob("*.yaml")), ids=lambda p: p.stem)
def test_our_keys_name_metrics_the_task_produces(path):
    from unlearn_bench.tasks import find_task, parse_task

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
