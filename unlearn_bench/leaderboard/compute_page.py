"""The compute comparison as files: ``<task>.compute.md`` / ``.json`` and a PNG + SVG figure.

Built from :mod:`unlearn_bench.leaderboard.compute`; the paper's side comes from
``leaderboards/published/compute/*.yaml`` (one file per paper claim set, with the task it is
about): each claim carries its value (or none, where no reachable source states it), its
``source_quality`` as in the published tables, and the sources it was read from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unlearn_bench.leaderboard import source_quality as quality
from unlearn_bench.leaderboard.compute import ComputeLine, figure_points, metric_cell
from unlearn_bench.leaderboard.formats import arrow, cell_text
from unlearn_bench.leaderboard.rows import method_text
from unlearn_bench.paths import atomic_write_text
from unlearn_bench.yaml_strict import build_dataclass, load_yaml

COST_NOTE = (
    "Training cost is that of the stage that made each model (run header `stage_info.cost`, "
    "mean over a row's seeds); the target was not trained. FLOPs are estimates by the formula "
    "named in the row; docs/cost.md gives the formula's error against "
    "`torch.utils.flop_counter` on one step (e.g. +0.03% for SmolLM2-135M with every parameter "
    "trained). Wall seconds are the stage's own (`elapsed_s` at its last step) on the machine "
    "that ran it. Tokens: forward / backward."
)


@dataclass(frozen=True)
class Claim:
    """One statement of a paper about compute, with how far it can be vouched for."""

    name: str
    statement: str
    source_quality: str
    sources: list[str] = field(default_factory=list)
    value: float | None = None  # None: no reachable source gives a number
    unit: str = ""
    against: str = ""  # our reference method the value is a share of, if any
    note: str = ""


@dataclass(frozen=True)
class PaperCompute:
    """A paper's compute claims about one task."""

    name: str
    task: str
    paper: str
    claims: list[Claim]


def load_paper(path: Path) -> PaperCompute:
    """Read and check one claims file (a bad key or quality is a one-line error)."""
    paper: PaperCompute = build_dataclass(PaperCompute, load_yaml(path), str(path))
    for claim in paper.claims:
        where = f"{path}: claim {claim.name}"
        # A claim with no number (e.g. run times only drawn in a figure) must say not_entered.
        quality.check_row(where, claim.source_quality, claim.value is not None, claim.note, False)
    return paper


def papers_for(task: str, folder: Path) -> list[PaperCompute]:
    """Every claims file under ``folder`` about ``task``."""
    found = [load_paper(p) for p in sorted(folder.glob("*.yaml"))] if folder.is_dir() else []
    return [p for p in found if p.task == task]


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"  # three significant digits: FLOPs, seconds and shares alike


def _share_heads(refs: dict[str, ComputeLine | None]) -> list[str]:
    heads = []
    for name, ref in refs.items():
        who = ref.row.label if ref else f"{name} (no finished run)"
        heads += [f"% of {who} FLOPs", f"% of {who} wall s"]
    return heads


def table_lines(
    lines: list[ComputeLine], refs: dict[str, ComputeLine | None], metrics: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """The Markdown table and the formula footnotes it refers to."""
    formulas = sorted({ln.formula for ln in lines if ln.formula})
    heads = ["model", "method", "hyperparameters"]
    for metric in metrics:
        direction = next((c.higher_is_better for ln in lines
                          if (c := metric_cell(ln, metric)) is not None), None)  # fmt: skip
        heads.append(metric + arrow(direction))
    heads += ["train FLOPs", "formula", "train wall s", "tokens", *_share_heads(refs)]
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for line in lines:
        cost = line.cost
        cells = [line.row.model, method_text(line.row), line.row.hparams]
        cells += [cell_text(metric_cell(line, m)) for m in metrics]
        tokens = "-"
        if cost["forward_tokens"] is not None:
            tokens = f"{cost['forward_tokens']:.0f} / {cost['backward_tokens'] or 0:.0f}"
        mark = f"[{formulas.index(line.formula) + 1}]" if line.formula else "-"
        cells += [_num(cost["flops"]), mark, _num(cost["wall_s"]), tokens]
        for name in refs:
            cells += [_num(line.shares[name]["flops"]), _num(line.shares[name]["wall_s"])]
        out.append("| " + " | ".join(cells) + " |")
    notes = [f"[{i}] {formula}" for i, formula in enumerate(formulas, 1)]
    return out, notes


def paper_lines(papers: list[PaperCompute], lines: list[ComputeLine]) -> list[str]:
    """The paper's claims, each with its source quality, and ours beside the shares."""
    out: list[str] = []
    for paper in papers:
        out += [f"## The paper's side: {paper.paper}", ""]
        out += ["| claim | value | source quality | sources | note |", "|---|---|---|---|---|"]
        for c in paper.claims:
            value = "unverified: no reachable source states it" if c.value is None else (
                f"{c.value:g} {c.unit}".strip())  # fmt: skip
            mark = " (unverified)" if quality.is_unverified(c.source_quality) else ""
            out.append(f"| {c.statement} | {value} | {c.source_quality}{mark} | "
                       f"{'; '.join(c.sources)} | {c.note} |")  # fmt: skip
        for claim in (c for c in paper.claims if c.against and c.value is not None):
            out += ["", f"Beside '{claim.name}' (paper: {claim.value:g} {claim.unit}):"]
            if not any(line.shares.get(claim.against, {}).get("flops") for line in lines):
                out.append(f"- no finished {claim.against} run with a training cost: no share yet")
            for line in lines:
                share = line.shares.get(claim.against) or {}
                if line.row.role == "unlearned" and share.get("flops") is not None:
                    out.append(f"- ours, {line.row.label}: {_num(share['flops'])}% of "
                               f"{claim.against}'s training FLOPs, {_num(share['wall_s'])}% of "
                               "its wall seconds")  # fmt: skip
        out.append("")
    return out


def to_markdown(
    task: str,
    lines: list[ComputeLine],
    refs: dict[str, ComputeLine | None],
    metrics: tuple[str, ...],
    papers: list[PaperCompute],
) -> str:
    """The whole page: our table, its notes, what the figure leaves out, the paper's side."""
    table, notes = table_lines(lines, refs, metrics)
    _, left_out = figure_points(lines, metrics)
    page = [f"# {task}: what each method buys per unit of compute", "",
            "Generated by `unlearn-bench cost RUN_DIR --out DIR` from run records; do not edit "
            "by hand.", "", *table, "", COST_NOTE, "", *notes, ""]  # fmt: skip
    if left_out:
        page += ["Not in the figure (withheld or not measured):", ""]
        page += [f"- {item}" for item in left_out] + [""]
    return "\n".join(page + paper_lines(papers, lines)).rstrip() + "\n"


def to_json(lines: list[ComputeLine], metrics: tuple[str, ...], papers: list[PaperCompute]) -> str:
    """The same content as JSON (cells with value, stderr and note)."""
    rows = []
    for line in lines:
        cells = {}
        for metric in metrics:
            cell = metric_cell(line, metric)
            if cell is not None:
                cells[metric] = {"value": cell.value, "stderr": cell.stderr, "note": cell.note}
        rows.append({
            "model": line.row.model, "method": line.row.label, "registry_method": line.method,
            "hyperparameters": line.row.hparams, "runs": line.row.run_ids, "metrics": cells,
            "train_cost": line.cost, "formula": line.formula, "percent_of": line.shares,
        })  # fmt: skip
    data = {"rows": rows, "papers": [asdict(p) for p in papers]}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def draw(task: str, lines: list[ComputeLine], metrics: tuple[str, ...], base: Path) -> list[Path]:
    """Each plotted metric against training FLOPs (log x), one panel per metric."""
    from unlearn_bench.leaderboard.plots import new_figure, save_figure

    points, left_out = figure_points(lines, metrics)
    shown = [m for m in metrics if m in points]
    if not shown:
        return []
    fig, axes = new_figure(len(shown))
    labels = sorted({label for pts in points.values() for label, _, _ in pts})
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    target = next((ln for ln in lines if ln.row.role in ("base", "target")), None)
    for ax, metric in zip(axes, shown, strict=True):
        for label, flops, value in points[metric]:
            ax.scatter([flops], [value], color=colours[label], s=50, label=label, zorder=3)
        cell = metric_cell(target, metric) if target else None
        if cell is not None and cell.value is not None:
            ax.axhline(cell.value, linestyle="--", color="gray", label="target (untrained)")
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs (estimate)")
        ax.set_title(metric + arrow(next(c.higher_is_better for ln in lines
                                         if (c := metric_cell(ln, metric)) is not None)),
                     fontsize=9)  # fmt: skip
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=7)
    caption = "not plotted: " + "; ".join(left_out) if left_out else "every metric plotted"
    fig.suptitle(f"{task}: metrics vs training compute\n{caption}", fontsize=8, wrap=True)
    return save_figure(fig, base)


def write_compute(
    task: str,
    lines: list[ComputeLine],
    refs: dict[str, ComputeLine | None],
    metrics: tuple[str, ...],
    papers: list[PaperCompute],
    out_dir: Path,
) -> list[Path]:
    """Write ``<task>.compute.md`` / ``.json`` and the figure; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{task}.compute.md", out_dir / f"{task}.compute.json"
    atomic_write_text(md, to_markdown(task, lines, refs, metrics, papers))
    atomic_write_text(js, to_json(lines, metrics, papers))
    return [md, js, *draw(task, lines, metrics, out_dir / f"{task}.compute")]
