"""The commands that run models: ``run``, ``eval``, ``score`` (no model) and ``protocol``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unlearn_bench.errors import UnlearnBenchError


def _config_from_args(args: argparse.Namespace) -> Any:
    """The RunConfig the flags (and ``--config``) describe."""
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
    if getattr(args, "allow_pickle", False):
        overrides["allow_pickle"] = True
    if getattr(args, "probes", None):
        overrides["probes"] = list(args.probes)
    if getattr(args, "limit", None) is not None:
        overrides["eval"] = {"limit": args.limit}
    if args.config:
        return RunConfig.from_yaml(args.config, overrides)
    if "task" not in overrides:
        raise UnlearnBenchError("give --config FILE or --task NAME")
    return RunConfig.from_dict(overrides)


def cmd_run(args: argparse.Namespace) -> int:
    """Finetune, unlearn, evaluate, then print and write the leaderboards."""
    from unlearn_bench.leaderboard.tables import (
        rows_from_records,
        stage_seconds_table,
        to_markdown,
        write_leaderboards,
    )
    from unlearn_bench.runner import run_protocol
    from unlearn_bench.train.distributed import is_main_process

    config = _config_from_args(args)
    if config.probes:  # unknown probe, bad split, bit width, k > n: refused before training
        from unlearn_bench.probes.driver import prepare

        prepare(config, config.probes)
    group_dir, records, seconds = run_protocol(config, echo=lambda m: print(m, flush=True))
    if not is_main_process():
        return 0  # under a multi-process launch only the main process reports and writes
    print(f"\nRun records: {group_dir}")
    print("\nSeconds per stage:\n" + stage_seconds_table(seconds))
    print(to_markdown(rows_from_records(records)))
    if config.probes:
        from unlearn_bench.leaderboard.robustness import write_robustness
        from unlearn_bench.probes.driver import probe_group

        print("==> probes " + ", ".join(config.probes), flush=True)
        probe_group(group_dir, config.probes, config, echo=lambda m: print(m, flush=True))
    written = write_leaderboards(Path(config.runs_dir), Path(config.leaderboards_dir))
    if config.probes:
        written += write_robustness(Path(config.runs_dir), Path(config.leaderboards_dir))
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
    from unlearn_bench.evaluate import parse_task
    from unlearn_bench.leaderboard.tables import dump
    from unlearn_bench.references import reference_view
    from unlearn_bench.runs import RunRecord
    from unlearn_bench.scoring import rescore

    record = RunRecord(Path(args.run))
    spec = parse_task(record.header["task"]["path"])
    reference = reference_view(args.reference, spec.name) if args.reference else None
    print(dump(rescore(record, spec, reference)))
    return 0


def cmd_protocol(args: argparse.Namespace) -> int:
    """MUSE scalability / sustainability: one run record per (method, step), plus curves."""
    from unlearn_bench.config import RunConfig
    from unlearn_bench.protocols.muse import run_muse_protocol

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    config = RunConfig.from_yaml(args.config, overrides)
    group, records, plots = run_muse_protocol(config, args.protocol, args.splits)
    print(f"Run records: {group} ({len(records)} runs)")
    for path in plots:
        print(path)
    return 0


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML run configuration")
    p.add_argument("--task", help="task name or path to a task YAML")
    p.add_argument("--model", help="HF hub id, local directory or 'smollm2-135m'")
    p.add_argument(
        "--backend",
        help="auto (default: vLLM generates where installed, HF scores), hf, vllm or fake",
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
    p.add_argument(
        "--allow-pickle", action="store_true",
        help="load a model folder holding only pickle weights (pytorch_model*.bin) with "
        "torch.load(weights_only=True); recorded in the run header",
    )  # fmt: skip


def add_commands(sub: Any) -> None:
    """Register run | eval | score | protocol on the main parser's subparsers."""
    p = sub.add_parser("run", help="finetune, unlearn, evaluate and write the leaderboard")
    _add_run_flags(p)
    p.add_argument(
        "--method", dest="methods", action="append", help="unlearning method (repeatable)"
    )
    p.add_argument("--no-finetune", action="store_true", help="unlearn the model as given")
    p.add_argument(
        "--probe", dest="probes", action="append",
        help="robustness probe after the run (repeatable): relearn-20, int4 ...",
    )  # fmt: skip
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("eval", help="evaluate one model on a task, no unlearning")
    _add_run_flags(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("score", help="re-score a finished run from stored samples (no model)")
    p.add_argument("run")
    p.add_argument("--reference", help="retain run folder or reference log (forget quality)")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("protocol", help="MUSE scalability / sustainability over forget splits")
    p.add_argument("--config", required=True, help="YAML run configuration (task, methods)")
    p.add_argument("--protocol", required=True, help="scalability or sustainability")
    p.add_argument("--splits", nargs="+", help="forget splits in order (default: MUSE's)")
    p.add_argument("--data-dir", help="local copy of the task's data")
    p.set_defaults(func=cmd_protocol)
