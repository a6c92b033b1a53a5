"""The ``unlearn-bench`` command: run, eval, score, ls, validate and the result commands.

Result commands (``cli.results``): leaderboard | compare | regress | sweep; ``cli.view``: view.

Heavy libraries are imported inside the commands that need them, so ``--help`` and ``ls``
start fast. Any UnlearnBenchError is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError


def _config_from_args(args: argparse.Namespace) -> Any:
    from unlearn_bench.config import RunConfig

    overrides: dict[str, Any] = {}
    for key in (
        "task",
        "model",
        "backend",
        "run_id",
        "runs_dir",
        "data_dir",
        "seed",
        "device",
        "dtype",
        "reference",
    ):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "methods", None):
        overrides["unlearn"] = [{"method": m} for m in args.methods]
    if getattr(args, "no_finetune", False):
        overrides["finetune"] = None
    if getattr(args, "no_cache", False):
        overrides["cache"] = False
    if getattr(args, "limit", None) is not None:
        overrides["eval"] = {"limit": args.limit}
    if args.config:
        return RunConfig.from_yaml(args.config, overrides)
    if "task" not in overrides:
        raise UnlearnBenchError("give --config FILE or --task NAME")
    return RunConfig.from_dict(overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from unlearn_bench.leaderboard.tables import (
        rows_from_records,
        stage_seconds_table,
        to_markdown,
        write_leaderboards,
    )
    from unlearn_bench.runner import run_protocol
    from unlearn_bench.train.distributed import is_main_process

    config = _config_from_args(args)
    group_dir, records, seconds = run_protocol(config, echo=lambda m: print(m, flush=True))
    if not is_main_process():
        return 0  # under a multi-process launch only the main process reports and writes
    print(f"\nRun records: {group_dir}")
    print("\nSeconds per stage:\n" + stage_seconds_table(seconds))
    print(to_markdown(rows_from_records(records)))
    written = write_leaderboards(Path(config.runs_dir), Path(config.leaderboards_dir))
    print("Leaderboards written: " + ", ".join(str(p) for p in written))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate one model as is (no finetune, no unlearning)."""
    args.no_finetune = True
    args.methods = None
    config = _config_from_args(args)
    import dataclasses

    config = dataclasses.replace(config, finetune=None, unlearn=[], retain_model=False)
    from unlearn_bench.leaderboard.tables import rows_from_records, to_markdown
    from unlearn_bench.runner import run_protocol

    group_dir, records, _ = run_protocol(config, echo=lambda m: print(m, flush=True))
    print(to_markdown(rows_from_records(records)))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Re-score a finished run from its stored observations: no model is loaded."""
    from unlearn_bench.evaluate import parse_task, score_samples
    from unlearn_bench.leaderboard.tables import dump
    from unlearn_bench.metrics.views import RunView
    from unlearn_bench.runs import RunRecord
    from unlearn_bench.scoring import derived_results

    record = RunRecord(Path(args.run))
    header = record.header
    spec = parse_task(header["task"]["path"])
    samples = record.read_samples(spec.name)
    if not samples:
        raise UnlearnBenchError(f"run {args.run} has no stored samples to score")
    by_set: dict[str, list[dict]] = {}
    for sample in samples:
        by_set.setdefault(sample["eval_set"], []).append(sample)
    set_results = score_samples(spec, by_set)
    view = RunView(header["run_id"], by_set, set_results)
    from unlearn_bench.references import reference_view

    reference = reference_view(args.reference, spec.name) if args.reference else None
    print(dump({spec.name: {**set_results, **derived_results(spec, view, reference)}}))
    return 0


def cmd_protocol(argv: list[str]) -> int:
    """Multi-step protocols (MUSE scalability and sustainability), each step a run record.

    The protocol driver owns its flags (including --help): ``main`` hands it everything after
    ``protocol`` untouched, before argparse sees it.
    """
    from unlearn_bench.protocols.muse import main as protocol_main

    return protocol_main(argv)


def cmd_ls(args: argparse.Namespace) -> int:
    from unlearn_bench.backends.base import BACKENDS
    from unlearn_bench.methods import METHODS
    from unlearn_bench.metrics import DERIVED_METRICS, METRICS
    from unlearn_bench.tasks import all_task_files

    what = args.what
    if what in ("tasks", "all"):
        print("tasks:   " + ", ".join(p.stem for p in all_task_files()))
    if what in ("methods", "all"):
        print("methods: " + ", ".join(METHODS.names()))
    if what in ("metrics", "all"):
        print("metrics: " + ", ".join(METRICS.names()))
        print("derived: " + ", ".join(DERIVED_METRICS.names()))
    if what in ("backends", "all"):
        print("backends: " + ", ".join(BACKENDS.names()))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.tasks import all_task_files

    files = [Path(f) for f in args.files] or all_task_files()
    failures = 0
    for path in files:
        try:
            spec = parse_task(path)
            print(f"ok    {path}  ({spec.name} v{spec.version})")
        except UnlearnBenchError as exc:
            failures += 1
            print(f"FAIL  {exc}")
    if failures:
        raise UnlearnBenchError(f"{failures} of {len(files)} task files are invalid")
    return 0


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML run configuration")
    p.add_argument("--task", help="task name or path to a task YAML")
    p.add_argument("--model", help="HF hub id, local directory or 'smollm2-135m'")
    p.add_argument(
        "--backend", help="hf (default), vllm, auto (vLLM for generation, HF for the rest) or fake"
    )
    p.add_argument("--run-id", help="group folder name under --runs-dir (resumes if unfinished)")
    p.add_argument("--runs-dir", help="where run records go (default: runs)")
    p.add_argument("--data-dir", help="local copy of the task's data")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    p.add_argument(
        "--reference",
        help="a finished retain run folder, or an open-unlearning *_EVAL.json / TOFU "
        "eval_log_aggregated.json(.gz) (forget quality, PrivLeak)",
    )
    p.add_argument("--limit", type=int, help="evaluate at most N items per eval set")
    p.add_argument("--no-cache", action="store_true", help="bypass the response cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="finetune, unlearn, evaluate and write the leaderboard")
    _add_run_flags(p)
    p.add_argument(
        "--method", dest="methods", action="append", help="unlearning method (repeatable)"
    )
    p.add_argument("--no-finetune", action="store_true", help="unlearn the model as given")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("eval", help="evaluate one model on a task, no unlearning")
    _add_run_flags(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("score", help="re-score a finished run from stored samples (no model)")
    p.add_argument("run")
    p.add_argument("--reference", help="retain run folder or reference log (forget quality)")
    p.set_defaults(func=cmd_score)
    # Listed for --help only: main() routes "protocol ..." to cmd_protocol before parsing.
    sub.add_parser(
        "protocol",
        help="MUSE scalability / sustainability (see --config/--protocol)",
        add_help=False,
    )
    p = sub.add_parser("ls", help="list tasks, methods, metrics, backends")
    p.add_argument(
        "what", nargs="?", default="all", choices=["all", "tasks", "methods", "metrics", "backends"]
    )
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("validate", help="check task files strictly")
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_validate)
    from unlearn_bench.cli.results import add_commands

    add_commands(sub)  # leaderboard | compare | regress | sweep
    from unlearn_bench.cli.view import add_command as add_view

    add_view(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from unlearn_bench import numerics

    try:
        numerics.pin()  # before anything imports torch: its kernels are chosen at first use
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    if argv[:1] == ["protocol"]:
        return cmd_protocol(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnlearnBenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "unlearn-bench: interrupted; rerun the same command with the same --run-id to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
