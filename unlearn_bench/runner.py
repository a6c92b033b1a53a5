"""The protocol as small named steps: plan -> finetune -> unlearn -> evaluate -> score -> write.

One ``run`` makes a group of run records under ``runs/<group>/``: the finetuned target model,
the retain (oracle) model, and one record per unlearning method, each an ordinary run record.
Every step is timed; finished stages are reused on a rerun (checkpoints and responses are
content-addressed in the user cache), and an interrupted group resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_bench.config import RunConfig
from unlearn_bench.errors import UnlearnBenchError
from unlearn_bench.evaluate import parse_task
from unlearn_bench.metrics.views import RunView
from unlearn_bench.paths import cache_dir, ensure_dir, read_json
from unlearn_bench.runs import RunRecord, git_commit, results_fingerprint
from unlearn_bench.scoring import finalize_results
from unlearn_bench.tasks import TaskSpec, find_task, load_task_data
from unlearn_bench.train.distributed import is_main_process, main_process_first, world_size

Echo = Callable[[str], None]


@dataclass
class Subject:
    """One model to evaluate: a row of the leaderboard."""

    label: str
    role: str  # "base", "target", "retain" or "unlearned"
    model_path: str = ""
    method: dict[str, Any] | None = None
    record: RunRecord | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timer:
    """Times named stages and echoes them."""

    echo: Echo
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block under ``name`` (times add up per name)."""
        self.echo(f"==> {name}")
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + took
        self.echo(f"    {name}: {took:.1f} s")


@dataclass
class Plan:
    """What planning validated: config, task, its data and the group folder."""

    config: RunConfig
    spec: TaskSpec
    splits: dict[str, list[dict]]
    group_dir: Path
    group_id: str


def plan(config: RunConfig) -> Plan:
    """Validate everything that can be checked before any model is loaded."""
    from unlearn_bench.backends.base import BACKENDS
    from unlearn_bench.methods import build_method
    from unlearn_bench.models import resolve_model

    spec = parse_task(find_task(config.task))
    backend_cls = BACKENDS.get(config.backend)
    # A task whose requirements the backend lacks is refused here, before any work.
    missing = set(spec.requires) - set(backend_cls.capabilities)
    if missing:
        raise UnlearnBenchError(
            f"backend {config.backend!r} lacks {sorted(missing)} required by task {spec.name!r}"
        )
    methods = [build_method(ucfg.method, ucfg.args) for ucfg in config.unlearn]
    labels = [u.label or u.method for u in config.unlearn]
    if len(set(labels)) != len(labels):
        raise UnlearnBenchError(f"two unlearning entries share a label: {labels}; set 'label'")
    if config.backend in ("hf", "auto"):
        from unlearn_bench.backends.hf import check_device

        check_device(config.device)
    if config.model != "smollm2-135m":  # the embedded default is converted on first use
        _check_weights_format(config, resolve_model(config.model).load_path)
    splits = load_task_data(spec, config.data_dir)
    evaluation_sets(spec, splits, config.eval.limit)  # an empty one is refused before any work
    from unlearn_bench.train.parts import check_parts

    for ucfg, (method_cls, _) in zip(config.unlearn, methods, strict=True):
        if getattr(method_cls, "own_stage", None) == "rlhf":  # TRL's PPO: trl installed?
            from unlearn_bench.train.rlhf import check_rlhf

            check_rlhf(ucfg, world_size())
    for method_cls, method_config in methods:  # e.g. a baseline needing safe responses
        check_parts(spec, splits, method_cls.name, method_cls.needs_for(method_config))
    if config.utility is not None:  # unknown lm-eval task or missing data: fail before training
        from unlearn_bench.utility.lm_eval_bridge import check

        check(config.utility)
    group_id = config.run_id or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    group_dir = Path(config.runs_dir) / group_id
    check_group(group_dir, config)
    if config.reference:  # a missing or malformed reference fails now, not after evaluating
        from unlearn_bench.references import reference_view

        reference_view(config.reference, spec.name)
    # Every folder the run writes to, checked now rather than when the first result is saved.
    ensure_dir(Path(config.runs_dir), "runs folder")
    ensure_dir(Path(config.leaderboards_dir), "leaderboards folder")
    if config.cache:
        cache_dir()
    return Plan(config, spec, splits, group_dir, group_id)


def _check_weights_format(config: RunConfig, load_path: str) -> None:
    """Pickle-only weights: refused, or with ``allow_pickle`` checked to hold tensors only."""
    from unlearn_bench.backends.hf import pickle_only, weights_kwargs

    if not pickle_only(load_path):
        return
    if config.allow_pickle and config.backend not in ("hf", "auto", "fake"):
        raise UnlearnBenchError(
            "allow_pickle loads pickle weights through HF only (backend 'hf' or 'auto'), "
            f"not {config.backend!r}"
        )
    weights_kwargs(load_path, config.allow_pickle)  # raises unless allowed and tensors only


def evaluation_sets(
    spec: TaskSpec, splits: dict[str, list[dict]], limit: int | None
) -> dict[str, list[dict]]:
    """Each eval set's records: its split, cut to the set's and the run's limits; none empty."""
    sets = {name: splits[e.split][: e.limit][:limit] for name, e in spec.evaluation.items()}
    for name, records in sets.items():
        if not records:
            raise UnlearnBenchError(
                f"task {spec.name}: evaluation set {name!r} (split "
                f"{spec.evaluation[name].split!r}) is empty; nothing to evaluate"
            )
    return sets


# Settings that never change a group's numbers: a resume may differ in these only.
_RESUME_FREE = ("run_id", "runs_dir", "leaderboards_dir", "probes", "probe_settings", "cache")


@contextmanager
def group_lock(group_dir: Path, name: str) -> Iterator[None]:
    """Hold run group ``name`` (``<group_dir>/.lock``) while writing it; taken: one-line error.

    Two copies of one command must never interleave their writes to the same records, so the
    second is refused ("run group X is in use by pid N") before it writes anything. Under a
    multi-process launch only the main process locks: the others are the same run.
    """
    from unlearn_bench.paths import exclusive

    if not is_main_process():
        yield
        return
    group_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(group_dir / ".lock", f"run group {name}", wait=False):
        yield


def check_group(group_dir: Path, config: RunConfig) -> None:
    """A finished group is never rewritten; an unfinished one resumes only as it was set up."""
    group_file = group_dir / "GROUP.json"
    if group_file.is_file() and read_json(group_file).get("status") == "finished":
        raise UnlearnBenchError(
            f"run directory {group_dir} already holds a finished run; choose another --run-id"
        )
    _check_resume(group_dir, config)


def _check_resume(group_dir: Path, config: RunConfig) -> None:
    """Refuse to resume a group under other settings (--limit included): one group, one setup."""
    group_file = group_dir / "GROUP.json"
    if not group_file.is_file():
        return
    before = read_json(group_file).get("config") or {}
    now = json.loads(json.dumps(config.to_dict(), default=str))
    before.setdefault("allow_pickle", False)  # groups from before the setting existed
    changed = sorted(
        k for k in set(before) | set(now) if k not in _RESUME_FREE and before.get(k) != now.get(k)
    )
    if changed:
        raise UnlearnBenchError(
            f"run directory {group_dir} holds an unfinished run with other settings "
            f"({', '.join(changed)}); rerun with the same settings or another --run-id"
        )


def _fingerprint(config: RunConfig, subject: Subject) -> str:
    payload = config.to_dict()
    for volatile in ("run_id", "runs_dir", "leaderboards_dir", "eval"):
        payload.pop(volatile, None)
    if payload.get("utility") is None:
        payload.pop("utility", None)  # runs without lm-eval tasks keep their old fingerprints
    if not payload.get("allow_pickle"):
        payload.pop("allow_pickle", None)  # likewise runs that load no pickle weights
    # Probes add records beside the group's; they never change the group's own records.
    payload.pop("probes", None)
    payload.pop("probe_settings", None)
    payload["subject"] = [subject.label, subject.role]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def open_record(p: Plan, subject: Subject) -> RunRecord:
    """The subject's run record in the group folder, created (or resumed) with its header."""
    fields = {
        "group": p.group_id,
        "role": subject.role,
        "label": subject.label,
        "method": subject.method,
        "task": {
            "name": p.spec.name,
            "version": p.spec.version,
            "fingerprint": p.spec.fingerprint(),
            "path": p.spec.path,
        },
        "config": p.config.to_dict(),
        "seed": p.config.seed,
        "fingerprint": _fingerprint(p.config, subject),
    }
    root = p.group_dir / subject.label
    record = RunRecord(root)
    if record.is_finished():
        return record
    return RunRecord.open_or_create(root, f"{p.group_id}/{subject.label}", fields)


def make_backend(config: RunConfig, model_path: str) -> Any:
    """The evaluation backend for a model, wrapped in the response cache if enabled."""
    from unlearn_bench.backends.base import BACKENDS
    from unlearn_bench.backends.cache import CachedBackend

    backend_cls = BACKENDS.get(config.backend)
    # Engine settings (parallelism, KV cache, LoRA) only for the backends that run vLLM.
    extra: dict[str, Any] = {"vllm": config.vllm} if config.backend in ("vllm", "auto") else {}
    if config.allow_pickle and config.backend in ("hf", "auto"):
        extra["allow_pickle"] = True  # only plan()-checked pickle folders get here
    backend = backend_cls(
        model_path, device=config.device, dtype=config.dtype, batch_size=config.eval.batch_size,
        trust_remote_code=config.trust_remote_code, **extra,
    )  # fmt: skip
    return CachedBackend(backend) if config.cache else backend


def evaluate_subject(p: Plan, subject: Subject, timer: Timer) -> None:
    """Collect observations and per-set scores for one model (skipped when already done)."""
    from unlearn_bench.evaluate import SCORED_TOKENS, collect_observations, score_samples
    from unlearn_bench.train.cost import eval_counter, eval_stage_cost

    record = subject.record
    assert record is not None
    if record.is_finished() or record.stage("evaluate"):
        return
    with timer.stage(f"evaluate {subject.label}"):
        start = time.perf_counter()
        backend = make_backend(p.config, subject.model_path)
        counter = eval_counter(backend)  # counts positions only: no number changes
        try:
            sets = evaluation_sets(p.spec, p.splits, p.config.eval.limit)
            samples = collect_observations(
                backend, p.spec, sets, p.config.eval.max_new_tokens, p.config.data_dir
            )
            scoring_start = time.perf_counter()
            set_results = score_samples(p.spec, samples)
            scoring = time.perf_counter() - scoring_start
            utility = _utility(p, subject, backend)
            identity = backend.identity()
            stats = dataclasses.asdict(backend.stats)
            # Where the stage's time went: the engines' phases plus the metrics' own work.
            stats["seconds"] = {
                k: round(v, 3) for k, v in {**stats["seconds"], "score": scoring}.items()
            }
            hits = getattr(backend, "hits", None)
            # Entries that failed their checksum and were recomputed: said, never hidden.
            dropped = getattr(backend, "dropped", None)
        finally:
            backend.close()
        record.write_samples(p.spec.name, [s for group in samples.values() for s in group])
        # Which engine answered which request kind (auto's rule, or one engine for the rest).
        routing = getattr(backend, "routing", None) or f"all: {identity.get('backend')}"
        record.update_header(
            backend=identity, routing=routing, scored_tokens=SCORED_TOKENS, set_results=set_results
        )
        if utility is not None:
            record.update_header(utility_results=utility)
        record.mark_stage(
            "evaluate",
            time.perf_counter() - start,
            backend_stats=stats,
            cache_hits=hits,
            cost=eval_stage_cost(subject.model_path, time.perf_counter() - start, counter),
            cache_dropped=dropped,
        )
        if dropped:
            print(f"{subject.label}: {dropped} corrupt cache entries dropped and recomputed")


def _utility(p: Plan, subject: Subject, backend: Any) -> dict[str, Any] | None:
    """The run's lm-eval tasks on this model (None when the run names none)."""
    utility = p.config.utility
    if utility is None:
        return None
    from unlearn_bench.backends.hf import HFBackend
    from unlearn_bench.utility.lm_eval_bridge import evaluate_backend

    config = p.config

    def load() -> Any:
        return HFBackend(
            subject.model_path, device=config.device, dtype=config.dtype,
            trust_remote_code=config.trust_remote_code, allow_pickle=config.allow_pickle,
            progress=False,
        )  # fmt: skip

    return evaluate_backend(utility, backend, load)


def model_hash(path: str) -> str:
    """Content hash of a local model; a hub id stands for itself (its revision is pinned)."""
    from unlearn_bench.models import weights_hash

    return weights_hash(Path(path)) if Path(path).is_dir() else f"hub:{path}"


def stage_inputs(p: Plan, start: str, start_hash: str | None = None) -> Any:
    """The one ``StageInputs`` a training stage takes, for a run starting from ``start``."""
    from unlearn_bench.train.stages import StageInputs

    return StageInputs(
        start=start,
        start_hash=start_hash or model_hash(start),
        spec=p.spec,
        splits=p.splits,
        seed=p.config.seed,
        trust_remote_code=p.config.trust_remote_code,
        allow_pickle=p.config.allow_pickle,
    )


def train_subjects(p: Plan, timer: Timer) -> list[Subject]:
    """Finetune target and retain models (cached) and build the subject list."""
    from unlearn_bench.models import resolve_model
    from unlearn_bench.train.stages import finetune

    config = p.config
    # main_process_first: a first use converts the default model once, not once per process.
    with timer.stage(f"resolve model {config.model}"), main_process_first():
        base_path = resolve_model(config.model).load_path
        inputs = stage_inputs(p, base_path)
    subjects: list[Subject] = []
    if config.finetune is None:
        target = Subject("target", "base", base_path)
    else:
        with timer.stage("finetune target on " + p.spec.splits.full):
            ckpt = finetune(inputs, p.spec.splits.full, config.finetune)
        target = Subject("target", "target", str(ckpt.path), info=_train_info(ckpt, config))
        if config.retain_model:
            with timer.stage("finetune retain on " + p.spec.splits.retain):
                ckpt = finetune(inputs, p.spec.splits.retain, config.finetune)
            subjects.append(
                Subject("retain", "retain", str(ckpt.path), info=_train_info(ckpt, config))
            )
    subjects.insert(0, target)
    return subjects


def _train_info(ckpt: Any, config: RunConfig) -> dict[str, Any]:
    """A finetuned subject's stage info: whether it was cached, and what the stage cost."""
    from unlearn_bench.train.cost import train_stage_cost

    ft = config.finetune
    assert ft is not None
    cost = train_stage_cost(ckpt.path, ft.trainable, ft.lora is not None, world_size())
    return {"cached": ckpt.cached, "cost": cost}


def unlearn_subjects(p: Plan, target: Subject, timer: Timer) -> list[Subject]:
    """Run every configured unlearning method from the target; one subject each."""
    from unlearn_bench.methods import build_method
    from unlearn_bench.train.cost import train_stage_cost
    from unlearn_bench.train.stages import trainable_pattern, unlearn

    out: list[Subject] = []
    if not p.config.unlearn:
        return out
    inputs = stage_inputs(p, target.model_path)
    for ucfg in p.config.unlearn:
        label = ucfg.label or ucfg.method
        method_cls, method_config = build_method(ucfg.method, ucfg.args)
        stage = unlearn
        if getattr(method_cls, "own_stage", None) == "rlhf":  # PPO is not a per-step loss
            from unlearn_bench.train.rlhf import rlhf_stage

            stage = rlhf_stage
        with timer.stage(f"unlearn {label}"):
            ckpt = stage(inputs, ucfg)
        subject = Subject(
            label,
            "unlearned",
            str(ckpt.path),
            method=dataclasses.asdict(ucfg),
            info={"cached": ckpt.cached, "train_log": str(ckpt.log_path)},
        )
        # The method's resolved config (variants included, defaults spelled out) and the
        # parameters it trained, so a header says which form of the method ran.
        subject.info["method_config"] = dataclasses.asdict(method_config)
        subject.info["trainable"] = trainable_pattern(ucfg, method_cls, method_config) or "all"
        subject.info["cost"] = train_stage_cost(
            ckpt.path, subject.info["trainable"], ucfg.lora is not None, world_size()
        )
        out.append(subject)
    return out


def run_protocol(
    config: RunConfig, echo: Echo = print
) -> tuple[Path, list[RunRecord], dict[str, float]]:
    """Run the whole protocol; returns the group folder, its run records and stage seconds."""
    timer = Timer(echo)
    with timer.stage("plan"):
        p = plan(config)
    from unlearn_bench.paths import atomic_write_json

    with group_lock(p.group_dir, p.group_id):
        # Again under the lock: another process may have finished the group since plan().
        check_group(p.group_dir, config)
        if is_main_process():
            atomic_write_json(
                p.group_dir / "GROUP.json", {"status": "running", "config": config.to_dict()}
            )
        from unlearn_bench.backends.vllm_pool import shared_engines

        try:
            with shared_engines():  # one vLLM engine for all the run's models (issue 19)
                return _run_group(p, timer)
        except Exception as exc:
            # Never left "running" forever: the group and its open records say failed, and why.
            _mark_failed(p, f"{type(exc).__name__}: {exc}")
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (the CLI turns it into one): resumable
            _mark_failed(p, "interrupted before it finished; rerun to resume", "interrupted")
            raise


def _mark_failed(p: Plan, error: str, status: str = "failed") -> None:
    """Write ``status`` with the error into GROUP.json and every unfinished record."""
    from unlearn_bench.paths import atomic_write_json

    if not is_main_process():
        return
    group_file = p.group_dir / "GROUP.json"
    atomic_write_json(group_file, {"status": status, "error": error, "config": p.config.to_dict()})
    for child in sorted(p.group_dir.iterdir()):
        record = RunRecord(child)
        try:
            if child.is_dir() and record.exists() and not record.is_finished():
                record.fail(error, status)
        except UnlearnBenchError:
            continue  # a damaged header cannot be marked; GROUP.json above says failed


def _run_group(p: Plan, timer: Timer) -> tuple[Path, list[RunRecord], dict[str, float]]:
    """Train, unlearn, evaluate and score the plan's subjects; GROUP.json says finished."""
    from unlearn_bench.paths import atomic_write_json

    config = p.config
    group_file = p.group_dir / "GROUP.json"
    subjects = train_subjects(p, timer)
    subjects += unlearn_subjects(p, subjects[0], timer)
    if not is_main_process():
        return p.group_dir, [], timer.seconds  # other processes only help train
    records = []
    for subject in subjects:
        subject.record = open_record(p, subject)
        _copy_training_logs(subject)
        if not subject.record.is_finished():
            subject.record.update_header(model_path=subject.model_path, stage_info=subject.info)
        evaluate_subject(p, subject, timer)
        records.append(subject.record)
    with timer.stage("score"):
        reference = reference_for(p, subjects)
        for subject in subjects:
            assert subject.record is not None
            if not subject.record.is_finished():
                check_collapse(subject, subjects[0], p.spec.name)
                finalize_results(subject.record, p.spec, reference)
    atomic_write_json(
        group_file,
        {
            "status": "finished",
            "config": config.to_dict(),
            "seconds": timer.seconds,
            "runs": [r.run_id for r in records],
            # What made these numbers and a digest of them: a stale committed table shows.
            "code_version": git_commit(),
            "results_fingerprint": results_fingerprint(records),
        },
    )
    return p.group_dir, records, timer.seconds


def check_collapse(subject: Subject, target: Subject, task: str) -> None:
    """Mark an unlearned model that collapsed (train/collapse.py); said, never silent."""
    if subject.role != "unlearned" or subject.record is None:
        return
    from unlearn_bench.train.collapse import mark_collapse

    log = subject.info.get("train_log")  # the checkpoint's log, where the record has no copy
    found = mark_collapse(subject.record, target.record, task, Path(log) if log else None)
    if found is not None:
        print(f"{subject.label}: COLLAPSED ({found.reason} at {found.where}): {found.detail}")


def _copy_training_logs(subject: Subject) -> None:
    """Copy a trained model's train_log.jsonl (and controls.json) into its run record.

    The record then holds the training dynamics on its own (plots read them from there).
    """
    record = subject.record
    if subject.role == "base" or record is None or record.is_finished():
        return
    for name in ("train_log.jsonl", "controls.json"):
        source = Path(subject.model_path) / name
        if source.is_file():
            shutil.copyfile(source, record.root / name)


def reference_for(p: Plan, subjects: list[Subject]) -> RunView | None:
    """The reference run derived metrics compare with: ``config.reference``, else the retain."""
    if p.config.reference:
        from unlearn_bench.references import reference_view

        return reference_view(p.config.reference, p.spec.name)  # a run folder or a log file
    for subject in subjects:
        if subject.role == "retain" and subject.record is not None:
            return RunView.load(subject.record, p.spec.name)
    return None
