"""Run lm-evaluation-harness tasks on our model objects and store them as ordinary results.

A run's ``utility:`` section names lm-eval tasks. Each evaluated model (the same weights our
metrics measured, handed to lm-eval's ``HFLM`` as a model object) runs them through lm-eval's
own ``simple_evaluate``; every metric becomes a result entry ``utility/<task>/<metric>`` of the
run's task, so it reaches results.json, the leaderboards and the viewer like any other metric.

Task names resolve in this order: WMDP over local data when ``utility.data_dir`` is set (see
``utility.wmdp``), then lm-eval's registry (its built-in tasks and ``utility.include_path``).
``check`` loads every task's data before any training, so an unknown name or missing data is
a one-line error up front, never a failure after an hour of unlearning.
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path
from typing import Any

from unlearn_bench.config import UtilityConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.utility import wmdp

PREFIX = "utility"


@functools.cache
def _task_manager(include_path: str | None) -> Any:
    """lm-eval's task index (seconds to build: every built-in YAML is read), once a process."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise UnlearnBenchError(
            "utility tasks need lm-eval: pip install 'unlearn-bench[lm-eval]'"
        ) from exc
    return TaskManager(verbosity="ERROR", include_path=include_path)


def resolve_tasks(config: UtilityConfig) -> tuple[list[str | dict[str, Any]], Any]:
    """What to hand lm-eval for each named task, and its task manager."""
    if not config.tasks:
        raise UnlearnBenchError("utility.tasks is empty: name at least one lm-eval task")
    if config.include_path and not Path(config.include_path).is_dir():
        raise UnlearnBenchError(f"utility.include_path {config.include_path} is not a folder")
    local = {  # missing local data is reported before lm-eval's slow task index is built
        name: wmdp.task_config(name, Path(config.data_dir))
        for name in config.tasks
        if name in wmdp.SUBJECTS and config.data_dir
    }
    manager = _task_manager(config.include_path)
    known = set(manager.all_tasks)
    resolved: list[str | dict[str, Any]] = []
    for name in config.tasks:
        if name in local:
            resolved.append(local[name])
        elif name in known:
            resolved.append(name)
        else:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnlearnBenchError(f"unknown lm-eval task {name!r}{hint}")
    return resolved, manager


def check(config: UtilityConfig) -> None:
    """Resolve every task and load its data now (before any model is trained)."""
    from lm_eval.tasks import get_task_dict

    tasks, manager = resolve_tasks(config)
    try:
        get_task_dict(tasks, manager)
    except Exception as exc:  # lm-eval/datasets raise many types; all mean "no data"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnlearnBenchError(
            f"utility tasks {', '.join(config.tasks)}: data could not be loaded ({first}); "
            "offline, point utility.data_dir at the WMDP questions or utility.include_path "
            "at local lm-eval tasks"
        ) from exc


def evaluate(config: UtilityConfig, model: Any, tokenizer: Any) -> dict[str, dict[str, Any]]:
    """Run the utility tasks on ``model`` and return result entries by name."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    tasks, manager = resolve_tasks(config)
    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=config.batch_size,
        device=str(model.device),
    )
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=config.num_fewshot,
        limit=config.limit,
        log_samples=False,
        verbosity="ERROR",
    )
    if out is None:
        raise UnlearnBenchError("lm-eval returned no results")
    return entries(out, lm_eval.__version__ if hasattr(lm_eval, "__version__") else "?", config)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not math.isnan(float(value)):
        return float(value)
    return None  # lm-eval writes "N/A" where it has no standard error


def entries(out: dict[str, Any], version: str, config: UtilityConfig) -> dict[str, dict[str, Any]]:
    """lm-eval's results dict -> our result entries ``utility/<task>/<metric>[<filter>]``."""
    found: dict[str, dict[str, Any]] = {}
    for task, metrics in out["results"].items():
        n = (out.get("n-samples") or {}).get(task, {}).get("effective")
        hib = (out.get("higher_is_better") or {}).get(task, {})
        task_version = _number((out.get("versions") or {}).get(task))
        meta = ((out.get("configs") or {}).get(task) or {}).get("metadata") or {}
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            # Only the task's metrics (lm-eval lists their directions); "alias", stderrs and
            # bookkeeping such as "sample_len" are not results.
            if metric not in hib or _number(value) is None:
                continue
            name = f"{PREFIX}/{task}/{metric}" + ("" if filt in ("", "none") else f"[{filt}]")
            found[name] = {
                "value": float(value),
                "stderr": _number(metrics.get(f"{metric}_stderr,{filt}")),
                "n": n,
                "higher_is_better": hib.get(metric),
                "version": int(task_version) if task_version is not None else None,
                "note": f"lm-eval {version}, num_fewshot={config.num_fewshot or 0}"
                + (f", limit={config.limit}" if config.limit else ""),
                **({"data_sha256": meta["data_sha256"]} if "data_sha256" in meta else {}),
            }
    return found


def evaluate_backend(config: UtilityConfig, backend: Any, load: Any) -> dict[str, dict[str, Any]]:
    """Utility of the model behind ``backend``; ``load()`` gives an HF backend otherwise."""
    inner = getattr(backend, "inner", backend)
    if getattr(inner, "model", None) is not None and hasattr(inner.model, "device"):
        return evaluate(config, inner.model, inner.tokenizer)
    hf = load()  # e.g. a vLLM backend: lm-eval gets the same weights through HF
    try:
        return evaluate(config, hf.model, hf.tokenizer)
    finally:
        hf.close()
