"""MUSE's scalability and sustainability protocols (Shi et al. 2024, sections 5.3 and 5.4).

- **scalability**: unlearn forget sets of growing size (``scal_forget_1..4``, each containing
  the previous one), every time from the same target model, and evaluate each result.
- **sustainability**: unlearn ``sust_forget_1..4`` (pairwise disjoint) one after another, each
  request starting from the previous request's unlearned model, evaluating after each.

Both write ordinary run records into one group folder, one per (method, step), each tagged in
its header with ``protocol: {"name": ..., "step": k, "split": ..., "size": n}`` (``size`` =
articles in that forget set), plus the target (and retain model, when configured) untagged as
reference lines. ``leaderboard.plots`` draws the curves from those headers; this driver also
writes them (``<group>/<task>.<protocol>.png`` / ``.svg``). Checkpoints are content-addressed,
so a rerun reuses every finished unlearning request.

    unlearn-bench protocol --config run.yaml --protocol sustainability
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unlearn_bench.backends.vllm_pool import shared_engines
from unlearn_bench.config import RunConfig
from unlearn_bench.data.unavailable import UnavailableSplit
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.paths import atomic_write_json
from unlearn_bench.runner import (  # the runner's named steps, reused as they are
    Echo,
    Plan,
    Subject,
    Timer,
    check_collapse,
    evaluate_subject,
    group_lock,
    open_record,
    plan,
    reference_for,
    stage_inputs,
    train_subjects,
)
from unlearn_bench.runs import RunRecord
from unlearn_bench.scoring import finalize_results

PROTOCOLS: dict[str, tuple[str, ...]] = {
    "scalability": tuple(f"scal_forget_{k}" for k in range(1, 5)),
    "sustainability": tuple(f"sust_forget_{k}" for k in range(1, 5)),
}


def check_forget_splits(p: Plan, names: list[str]) -> None:
    """Every forget set must exist and be non-empty before any model is trained."""
    for name in names:
        if name not in p.splits:
            raise UnlearnBenchError(f"task {p.spec.name} has no split {name!r} to unlearn")
        records = p.splits[name]
        if isinstance(records, UnavailableSplit):
            raise UnlearnBenchError(f"cannot run this protocol: {records.reason}")
        if not records:
            raise UnlearnBenchError(f"forget split {name!r} is empty")


def forget_size(records: list[dict[str, Any]]) -> int:
    """Articles in a forget set (records are chunks of articles; MUSE sizes sets by articles)."""
    articles = {r.get("article", i) for i, r in enumerate(records)}
    return len(articles)


def _unlearn_step(p: Plan, split: str, start: str, ucfg: Any) -> Any:
    from unlearn_bench.train.stages import unlearn

    spec = dataclasses.replace(p.spec, splits=dataclasses.replace(p.spec.splits, forget=split))
    return unlearn(dataclasses.replace(stage_inputs(p, start), spec=spec), ucfg)


def _protocol_subject(
    p: Plan, protocol: str, step: int, split: str, ucfg: Any, ckpt: Any
) -> Subject:
    label = ucfg.label or ucfg.method
    # The folder (and fingerprint) name is unique per step; the header label stays the method's
    # so that the plots join a method's steps into one curve.
    subject = Subject(f"{label}-{protocol[:4]}{step}", "unlearned", str(ckpt.path))
    subject.method = dataclasses.asdict(ucfg)
    subject.info = {"cached": ckpt.cached, "train_log": str(ckpt.log_path)}
    subject.record = open_record(p, subject)
    if not subject.record.is_finished():
        size = forget_size(p.splits[split])
        info = {"name": protocol, "step": step, "split": split, "size": size}
        subject.record.update_header(
            label=label, protocol=info, model_path=subject.model_path, stage_info=subject.info
        )
    return subject


def run_muse_protocol(
    config: RunConfig, protocol: str, forget_splits: list[str] | None = None, echo: Echo = print
) -> tuple[Path, list[RunRecord], list[Path]]:
    """Run one protocol for every unlearning method of ``config``; returns records and plots."""
    if protocol not in PROTOCOLS:
        raise UnlearnBenchError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if not config.unlearn:
        raise UnlearnBenchError(f"the {protocol} protocol needs at least one unlearning method")
    timer = Timer(echo)
    with timer.stage("plan"):
        p = plan(config)
        names = list(forget_splits or PROTOCOLS[protocol])
        check_forget_splits(p, names)
    with group_lock(p.group_dir, p.group_id):  # a second copy of the command is refused
        atomic_write_json(p.group_dir / "GROUP.json", {"status": "running", "protocol": protocol})
        references = train_subjects(p, timer)
        target = references[0]
        subjects: list[Subject] = []
        for subject in references:
            subject.record = open_record(p, subject)
            if not subject.record.is_finished():
                subject.record.update_header(model_path=subject.model_path, stage_info=subject.info)
            subjects.append(subject)
        for ucfg in config.unlearn:
            start = target.model_path
            for step, split in enumerate(names, 1):
                with timer.stage(f"unlearn {ucfg.label or ucfg.method} on {split}"):
                    ckpt = _unlearn_step(p, split, start, ucfg)
                subjects.append(_protocol_subject(p, protocol, step, split, ucfg, ckpt))
                if protocol == "sustainability":
                    start = str(ckpt.path)  # the next request starts from this unlearned model
        with shared_engines():  # one vLLM engine for all the protocol's models (issue 19)
            for subject in subjects:
                evaluate_subject(p, subject, timer)
        records = [s.record for s in subjects if s.record is not None]
        with timer.stage("score"):
            reference = reference_for(p, subjects)
            for subject in subjects:
                if subject.record is not None and not subject.record.is_finished():
                    check_collapse(subject, target, p.spec.name)
                    finalize_results(subject.record, p.spec, reference)
        plots = draw_curves(records, p.spec.name, protocol, p.group_dir)
        atomic_write_json(
            p.group_dir / "GROUP.json",
            {"status": "finished", "protocol": protocol, "config": config.to_dict(),
             "seconds": timer.seconds, "runs": [r.run_id for r in records]},
        )  # fmt: skip
        return p.group_dir, records, plots


def draw_curves(records: list[RunRecord], task: str, protocol: str, out_dir: Path) -> list[Path]:
    """The protocol's curves (PNG + SVG) through ``unlearn_bench.leaderboard.plots``."""
    from unlearn_bench.leaderboard.plots import draw_protocol
    from unlearn_bench.leaderboard.rows import rows_from_records

    rows = [r for r in rows_from_records(records) if r.task == task]
    return draw_protocol(task, protocol, rows, out_dir / f"{task}.{protocol}")
