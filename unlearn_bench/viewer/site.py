"""Write the viewer's static site: ``index.html``, ``app.js``, ``style.css`` and ``data/``.

The data is written twice, as ``.json`` (for any other tool) and as ``.js`` files that hand
the same JSON to the page (``UB.load(...)``): browsers refuse ``fetch`` on ``file://`` pages, a
``<script>`` tag is allowed, so the site opens straight from disk with no server and no network.
Run pages are loaded only when opened, so a folder of many runs does not load every sample.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from unlearn_bench.paths import atomic_write_text
from unlearn_bench.viewer import data
from unlearn_bench.viewer.robustness import robustness_boards

ASSETS = ("index.html", "app.js", "style.css")


def _write_data(out_dir: Path, name: str, key: str, payload: Any) -> str:
    """``data/<name>.json`` and its script twin; returns the twin's path relative to the site."""
    text = json.dumps(payload, sort_keys=True, default=str)
    atomic_write_text(out_dir / "data" / f"{name}.json", text + "\n")
    # "</" would end the <script> element early if a generation contains "</script>".
    script = text.replace("</", "<\\/")
    atomic_write_text(out_dir / "data" / f"{name}.js", f"UB.load({json.dumps(key)}, {script});\n")
    return f"data/{name}.js"


def _plots(records: list[Any], out_dir: Path) -> tuple[list[dict[str, str]], str]:
    """The leaderboard figures, or why there are none (matplotlib is the ``plots`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            [],
            "plots not drawn: matplotlib is not installed (pip install 'unlearn-bench[plots]')",
        )
    from unlearn_bench.leaderboard.plots import write_plots
    from unlearn_bench.leaderboard.robustness import draw_probe_curves

    written = write_plots(records, out_dir / "plots")
    for task in sorted({r.header["task"]["name"] for r in records if r.header.get("probe")}):
        # Forget metric against relearning steps and Leak@k against k (docs/probes.md).
        written += draw_probe_curves(task, records, out_dir / "plots" / f"{task}.probes")
    pngs = sorted(p for p in written if p.suffix == ".png")
    if not pngs:
        return [], "no plot: the runs have no data any figure needs"
    return [{"file": f"plots/{p.name}", "title": p.stem} for p in pngs], ""


def _comparisons(rows_by_task: dict[str, list[Any]], folder: Path) -> list[dict[str, str]]:
    """Published comparison pages for every published table whose task has runs here."""
    from unlearn_bench.leaderboard import compare

    pages = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        table = compare.load_published(path)
        task = table.task
        if not task or task not in rows_by_task or not compare.has_numbers(table):
            continue
        markdown = compare.to_markdown(table, rows_by_task[task], task)
        pages.append({"name": table.name, "task": task, "markdown": markdown})
    return pages


def build_site(
    runs_dir: Path, out_dir: Path, plots: bool = True, published: Path | None = None
) -> Path:
    """Write the site for every run under ``runs_dir`` into ``out_dir``; returns index.html.

    ``published`` is the folder of published tables (default: the repository's own).
    """
    from unlearn_bench.leaderboard import compare
    from unlearn_bench.leaderboard.tables import rows_by_task

    records = data.readable_records(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "data").is_dir():
        shutil.rmtree(out_dir / "data")  # pages of runs deleted since the last build go too
    for name in ASSETS:
        source = resources.files("unlearn_bench.viewer").joinpath("assets", name)
        atomic_write_text(out_dir / name, source.read_text(encoding="utf-8"))
    runs = []
    for number, record in enumerate(records):
        file = _write_data(out_dir, f"run-{number}", record.run_id, data.run_page(record, runs_dir))
        runs.append(data.run_summary(record, runs_dir, file))
    by_task = rows_by_task(records)
    probes = {r.run_id: str(r.header["probe"]["name"]) for r in records if r.header.get("probe")}
    figures, plot_note = _plots(records, out_dir) if plots else ([], "plots not requested")
    site = {
        "runs_dir": str(runs_dir),
        "boards": [data.board(task, rows, probes) for task, rows in by_task.items()],
        "robustness": robustness_boards(records),
        "runs": runs,
        "plots": figures,
        "plot_note": plot_note,
        "comparisons": _comparisons(by_task, published or compare.published_dir()),
    }
    _write_data(out_dir, "site", "site", site)
    return out_dir / "index.html"


def serve(out_dir: Path, port: int) -> None:
    """Serve the site on 127.0.0.1 only, with the standard library's HTTP server."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {out_dir} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        server.serve_forever()
