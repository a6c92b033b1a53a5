"""Robustness tables and figures from probe run records (``unlearn_bench.probes``).

One table per task and group: methods as rows; per probe the forget metric under the probe
and its recovery (share of the unlearned -> target gap the probe closes). Figures: the forget
metric against relearning steps, and Leak@k against k, one line per method.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from unlearn_bench.paths import atomic_write_text
from unlearn_bench.runs import RunRecord, find_runs, scores_by_item

Table = dict[str, Any]
SURVIVAL_BAR = 0.2
"""A model's forgetting survives a probe when the probe's recovery stays below this (issue 15)."""


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _probe_value(results: dict[str, Any], probe: dict[str, Any], metric: str) -> tuple:
    """(forget metric under the probe, recovery) from a probe record's results."""
    if probe["family"] == "leak":
        key = f"leak@{max(probe['k'])}_{probe['leak_metric']}"
        rec_metric = probe["leak_metric"]
    else:
        key, rec_metric = metric, metric
    value = next((v["value"] for k, v in results.items() if k.split("/", 1)[-1] == key), None)
    recovery = next(
        (v["value"] for k, v in results.items() if k.split("/", 1)[-1] == f"recovery_{rec_metric}"),
        None,
    )
    return value, recovery


def robustness_tables(records: list[RunRecord]) -> dict[tuple[str, str], Table]:
    """{(task, group): {"metric", "probes", "rows": {label: {probe: (value, recovery)}}}}."""
    from unlearn_bench.evaluate import parse_task

    tables: dict[tuple[str, str], Table] = {}
    finished = [r for r in records if r.is_finished()]
    for record in finished:
        header = record.header
        probe = header.get("probe")
        if probe is None:
            continue
        task = header["task"]["name"]
        metric = parse_task(header["task"]["path"]).probes.metric
        table = tables.setdefault(
            (task, str(header.get("group"))), {"metric": metric, "probes": [], "rows": {}}
        )
        if probe["name"] not in table["probes"]:
            table["probes"].append(probe["name"])
        results = record.results()[task]
        row = table["rows"].setdefault(probe["of"], {})
        row[probe["name"]] = _probe_value(results, probe, str(metric))
        if probe["family"] != "leak":
            # The unprobed value on the same items the probe evaluated.
            before = next((v["value"] for k, v in results.items()
                           if k.endswith(f"/before_{metric}")), None)  # fmt: skip
            row.setdefault(f"{probe['name']}:before", before)
    for table in tables.values():
        table["probes"].sort(key=_probe_order)
    return tables


def _probe_order(name: str) -> tuple[str, int]:
    match = re.match(r"^([a-z]+)-?(\d+)?$", name)
    return (match.group(1), int(match.group(2) or 0)) if match else (name, 0)


def survives(cells: dict[str, Any], probes: list[str]) -> str:
    """``yes``/``no`` (worst recovery and its probe) against SURVIVAL_BAR; ``-`` without any.

    A probe the row lacks, or whose recovery is undefined (no gap to the target), cannot vouch
    for the forgetting, so the verdict is then ``?`` naming those probes.
    """
    recoveries = {p: cells.get(p, (None, None))[1] for p in probes}
    if all(r is None for r in recoveries.values()):
        return "-"  # the target (the reference) or a row without any recovery
    missing = [p for p, r in recoveries.items() if r is None]
    if missing:
        return f"? (no recovery: {', '.join(missing)})"
    worst = max(recoveries, key=lambda p: recoveries[p])
    verdict = "**yes**" if recoveries[worst] < SURVIVAL_BAR else "no"
    return f"{verdict} (worst {recoveries[worst]:.3f}, {worst})"


def to_markdown(task: str, table: Table) -> str:
    """The table as markdown: a verdict column, then a value and a recovery column per probe."""
    metric, probes = table["metric"], table["probes"]
    head = ["model", f"survives every probe (recovery < {SURVIVAL_BAR})"]
    head += [f"{p}: {'leak' if p.startswith('leak') else metric}" for p in probes]
    head += [f"{p}: recovery" for p in probes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cells in table["rows"].items():
        values = [_fmt(cells.get(p, (None, None))[0]) for p in probes]
        recoveries = [_fmt(cells.get(p, (None, None))[1]) for p in probes]
        lines.append(
            "| " + " | ".join([label, survives(cells, probes), *values, *recoveries]) + " |"
        )
    return (
        f"# {task}: robustness probes\n\nGenerated from probe run records; do not edit by hand. "
        f"Forget metric: `{metric}` on the probe's forget items (for leak-N: Leak@N of the "
        "leak metric). Recovery = (unlearned under probe - unlearned) / (target under probe - "
        "unlearned) on the same items; 0 = forgetting survives, 1 = fully recovered. A model "
        f"survives every probe when each probe's recovery is below {SURVIVAL_BAR} (the worst "
        "one is named).\n\n" + "\n".join(lines) + "\n"
    )


def write_robustness(runs_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``<task>.robustness.md`` (and figures) for every group with probe records."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = find_runs(runs_dir)
    written = []
    for (task, _group), table in sorted(robustness_tables(records).items()):
        path = out_dir / f"{task}.robustness.md"
        atomic_write_text(path, to_markdown(task, table))
        written.append(path)
        written += draw_probe_curves(task, records, out_dir / f"{task}.probes")
    return written


def probe_curves(records: list[RunRecord], task: str) -> dict[str, dict[str, dict[str, list]]]:
    """{"relearn": {model: {x: steps, y: metric}}, "leak": {model: {x: k, y: Leak@k}}}."""
    from unlearn_bench.evaluate import parse_task

    curves: dict[str, dict[str, dict[str, list]]] = {"relearn": {}, "leak": {}}
    for record in (r for r in records if r.is_finished()):
        header = record.header
        probe = header.get("probe")
        if probe is None or header["task"]["name"] != task:
            continue
        results = record.results()[task]
        if probe["family"] == "relearn":
            metric = parse_task(header["task"]["path"]).probes.metric
            value = next((v["value"] for k, v in results.items()
                          if k.split("/", 1)[-1] == metric), None)  # fmt: skip
            before = next((v["value"] for k, v in results.items()
                           if k.endswith(f"/before_{metric}")), None)  # fmt: skip
            if before is None:
                # Only unlearned records carry before_<metric> (for recovery); the target's
                # 0-step point is its unprobed score on the same items, read from its samples.
                before = unprobed_mean(record, probe["of"], task, str(metric))
            line = curves["relearn"].setdefault(probe["of"], {"x": [], "y": []})
            if before is not None and 0 not in line["x"]:
                line["x"].append(0)
                line["y"].append(before)
            line["x"].append(probe["steps"])
            line["y"].append(value)
        elif probe["family"] == "leak":
            line = curves["leak"].setdefault(probe["of"], {"x": [], "y": []})
            for k in probe["k"]:
                key = f"leak@{k}_{probe['leak_metric']}"
                line["x"].append(k)
                line["y"].append(next(v["value"] for n, v in results.items()
                                      if n.split("/", 1)[-1] == key))  # fmt: skip
    for kind in curves.values():
        for line in kind.values():
            pairs = sorted(zip(line["x"], line["y"], strict=True))
            line["x"], line["y"] = [p[0] for p in pairs], [p[1] for p in pairs]
    return {k: v for k, v in curves.items() if v}


def unprobed_mean(record: RunRecord, label: str, task: str, metric: str) -> float | None:
    """Mean ``metric`` of the group's unprobed run ``label`` over the items ``record`` probed.

    None when either record has no stored samples or they share no item.
    """
    subject = RunRecord(record.root.parent / label)
    probed = scores_by_item(record.read_samples(task), metric)
    before = scores_by_item(subject.read_samples(task), metric)
    shared = [before[k] for k in probed if k in before]
    return sum(shared) / len(shared) if shared else None


def draw_probe_curves(task: str, records: list[RunRecord], base: Path) -> list[Path]:
    """Forget metric vs relearning steps and Leak@k vs k, one panel each (when present)."""
    from unlearn_bench.leaderboard.plots import new_figure, save_figure

    curves = probe_curves(records, task)
    if not curves:
        return []
    fig, axes = new_figure(len(curves))
    titles = {"relearn": ("relearning steps", "forget metric"), "leak": ("k", "Leak@k")}
    for ax, (kind, lines) in zip(axes, sorted(curves.items()), strict=True):
        for label, line in sorted(lines.items()):
            ax.plot(line["x"], line["y"], marker="o", label=label)
        ax.set_xlabel(titles[kind][0])
        ax.set_ylabel(titles[kind][1])
        if kind == "leak":
            ax.set_xscale("log", base=2)
        ax.set_title(f"{task}: {kind}")
        ax.legend(fontsize=7)
    return save_figure(fig, base)
