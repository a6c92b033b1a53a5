"""Sweeps: grid expansion, a local sweep on the tiny model that survives a failed cell, and the
Ray fan-out driven through a stand-in ``ray`` module (no cluster here)."""

import json
import sys
import types
from pathlib import Path

import pytest
import yaml

import unlearn_bench.protocols.sweep as sw
from unlearn_bench.cli import main
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.runs import find_runs


def _grid(tmp_path: Path, grid: list, base: dict | None = None, **top) -> Path:
    data = {"sweep": "s", "base": {"task": "synthetic_people", "runs_dir": str(tmp_path / "runs"),
                                   **(base or {})}, "grid": grid, **top}  # fmt: skip
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_expands_lists_in_fields_and_args(tmp_path):
    grid = [
        {"method": "grad_ascent", "lr": [1e-5, 2e-5], "epochs": 2},
        {"method": "npo", "args": {"beta": [0.1, 0.5], "alpha": 1.0}},
    ]
    plan = sw.load_sweep(_grid(tmp_path, grid, seeds=[0, 1]))
    names = [c.name for c in plan.cells]
    assert names == [
        "grad_ascent-lr=1e-05-seed=0", "grad_ascent-lr=1e-05-seed=1",
        "grad_ascent-lr=2e-05-seed=0", "grad_ascent-lr=2e-05-seed=1",
        "npo-beta=0.1-seed=0", "npo-beta=0.1-seed=1", "npo-beta=0.5-seed=0", "npo-beta=0.5-seed=1",
    ]  # fmt: skip
    cell = plan.cells[2].config
    assert (cell.unlearn[0].lr, cell.unlearn[0].epochs, cell.seed) == (2e-5, 2.0, 0)
    assert cell.run_id == "s/grad_ascent-lr=2e-05-seed=0"
    assert plan.cells[6].config.unlearn[0].args == {"beta": 0.5, "alpha": 1.0}
    assert Path(cell.runs_dir).is_absolute()  # workers elsewhere must find it


@pytest.mark.parametrize(
    ("grid", "top", "message"),
    [
        ([{"lr": 1e-5}], {}, "with a 'method'"),
        ([], {}, "non-empty list"),
        ([{"method": "npo", "lr": []}], {}, "empty list"),
        ([{"method": "npo"}, {"method": "npo"}], {}, "both 'npo'"),
        ([{"method": "npo", "lrr": 1e-5}], {}, "unknown key 'lrr'"),
        ([{"method": "npo"}], {"extra": 1}, "unknown key 'extra'"),
        ([{"method": "npo"}], {"seeds": "0"}, "'seeds' must be"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, grid, top, message):
    with pytest.raises(UnlearnBenchError, match=message):
        sw.load_sweep(_grid(tmp_path, grid, **top))


def test_base_may_not_set_unlearn(tmp_path):
    with pytest.raises(UnlearnBenchError, match="may not set 'unlearn'"):
        sw.load_sweep(_grid(tmp_path, [{"method": "npo"}], base={"unlearn": []}))


def test_local_sweep_survives_a_failed_cell_and_resumes(tiny_model_dir, tmp_path, capsys):
    import torch

    torch.set_num_threads(1)
    base = {
        "model": str(tiny_model_dir), "leaderboards_dir": str(tmp_path / "lb"),
        "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 8}, "eval": {"limit": 4},
    }  # fmt: skip
    grid = [
        {"method": "npo", "args": {"bogus": 1}},  # fails inside its run; must not stop the rest
        {"method": "grad_ascent", "lr": [1e-2, 2e-2], "epochs": 1, "batch_size": 4},
    ]
    path = _grid(tmp_path, grid, base=base)
    assert main(["sweep", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 of 3 cells done, 1 failed" in out
    state = json.loads((tmp_path / "runs" / "s" / "SWEEP.json").read_text())["cells"]
    assert state["npo"]["status"] == "failed" and "bogus" in state["npo"]["error"]
    assert state["grad_ascent-lr=0.01"]["status"] == "finished"
    assert state["grad_ascent-lr=0.02"]["runs"] == [
        "s/grad_ascent-lr=0.02/target", "s/grad_ascent-lr=0.02/retain",
        "s/grad_ascent-lr=0.02/grad_ascent",
    ]  # fmt: skip
    unlearned = [r for r in find_runs(tmp_path / "runs") if r.header["role"] == "unlearned"]
    assert sorted(r.header["method"]["lr"] for r in unlearned) == [0.01, 0.02]
    assert all(r.is_finished() for r in unlearned)
    # The second cell reused the first cell's finetunes from the checkpoint cache.
    second = tmp_path / "runs" / "s" / "grad_ascent-lr=0.02" / "target" / "header.json"
    assert json.loads(second.read_text())["stage_info"]["cached"] is True
    table = (tmp_path / "lb" / "synthetic_people.md").read_text()
    assert "lr=0.01 ep=1 bs=4" in table and "lr=0.02 ep=1 bs=4" in table
    # A rerun skips the finished cells and retries only the failed one.
    assert main(["sweep", str(path)]) == 1
    assert "| grad_ascent-lr=0.01 | skipped |" in capsys.readouterr().out


class _Ref:
    """An object reference: hashable by identity, like Ray's."""

    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args


class _FakeRay(types.ModuleType):
    """Just enough of Ray's task API, run in-process, to drive ``run_sweep_ray``."""

    def __init__(self) -> None:
        super().__init__("ray")
        self.calls: list[tuple[str, object]] = []

    def init(self, address=None, ignore_reinit_error=False):
        self.calls.append(("init", address))

    def shutdown(self):
        self.calls.append(("shutdown", None))

    def remote(self, **options):
        self.calls.append(("options", options))

        def wrap(fn):
            def submit(*args):
                self.calls.append(("submit", args[1]))
                return _Ref(fn, args)

            return types.SimpleNamespace(remote=submit)

        return wrap

    def wait(self, refs, num_returns=1):
        self.calls.append(("wait", len(refs)))
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.fn(*ref.args)


def test_ray_executor_primes_until_a_cell_succeeds_then_fans_out(tmp_path, monkeypatch):
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)

    def fake_cell(config, cell):
        if cell == "grad_ascent-lr=0.01":
            raise RuntimeError("worker died")  # what ray.get raises for a lost task
        return vars(sw.Outcome(cell, "finished", 1.0, runs=[f"s/{cell}/x"]))

    monkeypatch.setattr(sw, "run_cell", fake_cell)
    monkeypatch.setattr(sw, "check_address", lambda address: None)  # no host "head" here
    grid = [{"method": "grad_ascent", "lr": [0.01, 0.02, 0.03, 0.04]}]
    plan = sw.load_sweep(_grid(tmp_path, grid))
    outcomes = sw.run_sweep_ray(plan, "ray://head:10001", 2.0, 0.5, echo=lambda _: None)
    assert [(o.cell, o.status) for o in outcomes] == [
        ("grad_ascent-lr=0.01", "failed"), ("grad_ascent-lr=0.02", "finished"),
        ("grad_ascent-lr=0.03", "finished"), ("grad_ascent-lr=0.04", "finished"),
    ]  # fmt: skip
    assert "worker died" in outcomes[0].error
    assert fake.calls[0] == ("init", "ray://head:10001")
    assert fake.calls[1] == ("options", {"num_cpus": 2.0, "num_gpus": 0.5, "max_retries": 0})
    # The failed first cell did not fill the finetune cache, so the second also runs alone;
    # once it succeeded, the remaining two go out together.
    assert fake.calls[2:] == [
        ("submit", "grad_ascent-lr=0.01"), ("wait", 1),
        ("submit", "grad_ascent-lr=0.02"), ("wait", 1),
        ("submit", "grad_ascent-lr=0.03"), ("submit", "grad_ascent-lr=0.04"),
        ("wait", 2), ("wait", 1), ("shutdown", None),
    ]  # fmt: skip
    state = json.loads(plan.state_path.read_text())["cells"]
    assert state["grad_ascent-lr=0.01"]["status"] == "failed"
    assert state["grad_ascent-lr=0.04"]["runs"] == ["s/grad_ascent-lr=0.04/x"]


def test_ray_not_installed_is_said_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    path = _grid(tmp_path, [{"method": "grad_ascent"}])
    assert main(["sweep", str(path), "--executor", "ray"]) == 2
    assert "needs Ray, which is not installed" in capsys.readouterr().err


def test_ray_address_that_does_not_answer_is_one_line_error(tmp_path, capsys):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = _grid(tmp_path, [{"method": "grad_ascent"}])
    assert (
        main(["sweep", str(path), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no Ray cluster answers at 127.0.0.1:{port}" in err


def test_dry_run_lists_cells(tmp_path, capsys):
    path = _grid(tmp_path, [{"method": "grad_ascent", "lr": [0.01, 0.02]}])
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 cells" in out and "grad_ascent-lr=0.02" in out
    assert not (tmp_path / "runs").exists()
