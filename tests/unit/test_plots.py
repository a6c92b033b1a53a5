"""Plot data built from the fixture runs (values from tests/fixtures/make_fixture_runs.py), and
the figures written as PNG + SVG next to the tables."""

import json
import shutil
from pathlib import Path

import pytest

from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.leaderboard.plots import (
    dynamics_series,
    protocol_curves,
    tradeoff_points,
    write_plots,
)
from unlearn_bench.leaderboard.rows import rows_from_records
from unlearn_bench.runs import RunRecord, find_runs

pytest.importorskip("matplotlib", reason="plots need the 'plots' extra (matplotlib)")

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def rows():
    return rows_from_records(find_runs(RUNS))


def test_tradeoff_points_are_the_leaderboard_rows(rows):
    x_name, points = tradeoff_points([r for r in rows if r.task == "toy_tofu"])
    assert x_name == "model_utility"
    got = {(p["label"], p["hparams"]): (p["x"], p["y"]) for p in points}
    assert got[("npo", "lr=1e-05 ep=5 bs=4 beta=0.1")] == (0.55, 0.6)
    assert got[("grad_ascent", "lr=1e-05 ep=5 bs=4")] == pytest.approx((0.52, 0.3))  # seed mean
    assert got[("target", "ft lr=0.0001 ep=5")] == (0.6, 1e-05)
    assert len(points) == 5


def test_tradeoff_falls_back_to_retain_utility(rows):
    import dataclasses

    from unlearn_bench.leaderboard.rows import Cell

    row = dataclasses.replace(rows[0], metrics={
        "forget_quality": Cell(0.2, None, None, True, 1),
        "retain_utility": Cell(0.7, None, None, True, 1),
    })  # fmt: skip
    assert tradeoff_points([row]) == (
        "retain_utility",
        [{"label": row.label, "role": row.role, "hparams": row.hparams, "x": 0.7, "y": 0.2}],
    )


def test_dynamics_read_unlearning_train_logs_only():
    series = dynamics_series(find_runs(RUNS), "toy_tofu")
    assert set(series) == {
        "grad_ascent (toy-a/grad_ascent)", "grad_ascent (toy-c/grad_ascent)", "npo (toy-a/npo)",
    }  # fmt: skip
    npo = series["npo (toy-a/npo)"]
    # forget_nll = 0.2 + 0.15 s for s = 1..6
    assert [s for s, _ in npo["forget_nll"]] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in npo["forget_nll"]] == pytest.approx([0.35, 0.5, 0.65, 0.8, 0.95, 1.1])
    assert set(npo) == {"loss", "forget_nll", "retain_nll"}


def test_dynamics_fall_back_to_the_header_train_log_path(tmp_path):
    run = tmp_path / "g" / "npo"
    shutil.copytree(RUNS / "toy-a" / "npo", run)
    log = tmp_path / "elsewhere.jsonl"
    (run / "train_log.jsonl").unlink()
    # As the trainer writes it: bookkeeping (lr, tokens, timings) next to the losses.
    log.write_text("".join(
        json.dumps({"step": s, "loss": -0.1 * s, "forget_nll": 0.1 * s, "lr": 1e-5,
                    "tokens": 240, "elapsed_s": 1.5 * s}) + "\n"
        for s in range(1, 7)
    ))  # fmt: skip
    header = json.loads((run / "header.json").read_text())
    header["stage_info"] = {"train_log": str(log)}
    (run / "header.json").write_text(json.dumps(header))
    series = dynamics_series([RunRecord(run)], "toy_tofu")
    assert set(series["npo (toy-a/npo)"]) == {"loss", "forget_nll"}
    assert series["npo (toy-a/npo)"]["loss"][5] == (6, pytest.approx(-0.6))


def test_protocol_curves_by_size_and_step(rows):
    muse = [r for r in rows if r.task == "toy_muse"]
    scal = protocol_curves(muse, "scalability")
    assert scal["knowmem_forget"]["npo lr=1e-05 ep=5 bs=4"] == [(1, 50.0), (2, 45.0), (4, 38.0)]
    assert scal["privleak"]["grad_ascent lr=1e-05 ep=5 bs=4"] == [(1, 20.0), (2, 45.0), (4, 60.0)]
    sust = protocol_curves(muse, "sustainability")
    assert sust["verbmem_forget"]["npo lr=1e-05 ep=5 bs=4"] == [
        (1, 41.0), (2, 35.0), (3, 31.0), (4, 25.0),
    ]  # fmt: skip
    assert "grad_ascent lr=1e-05 ep=5 bs=4" not in sust["verbmem_forget"]


def test_protocol_without_its_x_field_is_an_error(rows):
    import dataclasses

    bad = dataclasses.replace(rows[-1], protocol={"name": "scalability", "steps": 3})
    with pytest.raises(UnlearnBenchError, match="lacks size or forget_size"):
        protocol_curves([bad], "scalability")


def test_figures_written_as_png_and_svg(tmp_path):
    written = write_plots(find_runs(RUNS), tmp_path)
    names = sorted(p.name for p in written)
    expected = [
        f"{task}.{kind}.{ext}"
        for task, kind in [("toy_muse", "scalability"), ("toy_muse", "sustainability"),
                           ("toy_tofu", "dynamics"), ("toy_tofu", "tradeoff")]
        for ext in ("png", "svg")
    ]  # fmt: skip
    assert names == sorted(expected)
    for path in written:
        head = path.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else head.startswith(b"<?xml")
    svg = (tmp_path / "toy_tofu.tradeoff.svg").read_text()
    assert "<dc:date>" not in svg and "npo" in svg


def test_leaderboard_plots_flag_writes_figures_next_to_tables(tmp_path, capsys):
    args = ["leaderboard", "--runs-dir", str(RUNS), "--out", str(tmp_path), "--task", "toy_muse"]
    assert main([*args, "--plots", "--formats", "md"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "toy_muse.md", "toy_muse.scalability.png", "toy_muse.scalability.svg",
        "toy_muse.sustainability.png", "toy_muse.sustainability.svg",
    ]  # fmt: skip
