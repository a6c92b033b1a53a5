// unlearn-bench results viewer: renders data/site.js and, on demand, data/run-N.js.
// No network and no library: every element is built with the DOM API and text nodes, so a
// model's generation is always shown as text, never interpreted as markup.
"use strict";

const UB = { site: null, runs: {}, waiting: {} };

UB.load = function (key, payload) {
  if (key === "site") { UB.site = payload; window.addEventListener("hashchange", route); route(); return; }
  UB.runs[key] = payload;
  (UB.waiting[key] || []).forEach((fn) => fn(payload));
  delete UB.waiting[key];
};

function runData(summary, fn) {
  if (UB.runs[summary.run_id]) { fn(UB.runs[summary.run_id]); return; }
  const first = !UB.waiting[summary.run_id];
  (UB.waiting[summary.run_id] = UB.waiting[summary.run_id] || []).push(fn);
  if (first) { const s = document.createElement("script"); s.src = summary.file; document.body.appendChild(s); }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "onclick" || k === "oninput" || k === "onchange") node[k] = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

function direction(hib) { return hib === true ? "↑ higher is better" : hib === false ? "↓ lower is better" : "no better direction"; }
function arrow(hib) { return hib === true ? "↑" : hib === false ? "↓" : "↕"; }
function runIndex(runId) { return UB.site.runs.findIndex((r) => r.run_id === runId); }
function runLink(runId, text) { const i = runIndex(runId); return i < 0 ? (text || runId) : el("a", { href: "#/run/" + i, class: "run-link" }, text || runId); }

// A table whose headers sort it: click once descending for numbers, again to reverse.
function sortableTable(headers, rows, id) {
  const table = el("table", { id: id });
  const tbody = el("tbody");
  const ths = headers.map((h, col) => {
    const th = el("th", { class: "sortable", title: h.title || null, "data-key": h.key }, h.label);
    if (h.dir !== undefined) th.append(el("br"), el("span", { class: "dir" }, arrow(h.dir)));
    th.onclick = () => {
      const desc = th.getAttribute("aria-sort") !== "descending";
      ths.forEach((o) => o.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      const missing = desc ? -Infinity : Infinity;
      rows.sort((a, b) => {
        const x = a.sort[col] ?? missing, y = b.sort[col] ?? missing;
        const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return desc ? -c : c;
      });
      tbody.replaceChildren(...rows.map((r) => r.tr));
    };
    return th;
  });
  table.append(el("thead", {}, el("tr", {}, ths)), tbody);
  tbody.append(...rows.map((r) => r.tr));
  return table;
}

function boardTable(board, id) {
  const fixed = [{ key: "label", label: "label" }, { key: "role", label: "role" }, { key: "model", label: "model" }, { key: "hparams", label: "settings" }];
  const metricHeads = board.columns.map((c) => ({ key: c.key, label: c.key, dir: c.higher_is_better,
    title: `${c.key}${c.version ? " (v" + c.version + ")" : ""}: ${c.description} — ${direction(c.higher_is_better)}` }));
  const rows = board.rows.map((r, i) => {
    const cells = board.columns.map((c) => {
      const cell = r.cells[c.key];
      const v = cell ? cell.value : null;
      const tip = cell ? [cell.stderr !== null ? "± " + fmt(cell.stderr) + " (stderr)" : "", cell.n ? "n=" + cell.n : "", cell.note].filter(Boolean).join("; ") : "not measured";
      return el("td", { class: "num" + (c.best_rows.includes(i) ? " best" : ""), title: tip || null, "data-col": c.key }, cell && cell.note && v === null ? "withheld" : fmt(v));
    });
    const label = el("td", { title: "runs: " + r.run_ids.join(", ") }, runLink(r.run_ids[0], r.label));
    const tr = el("tr", {}, label, el("td", {}, r.role), el("td", {}, r.model), el("td", { class: "muted" }, r.hparams), cells);
    const sort = [r.label, r.role, r.model, r.hparams, ...board.columns.map((c) => (r.cells[c.key] ? r.cells[c.key].value : null))];
    return { tr, sort };
  });
  return sortableTable([...fixed, ...metricHeads], rows, id || "board-" + board.task);
}

function showBoards(main) {
  main.append(el("h1", {}, "Leaderboards"), el("p", { class: "muted" }, "Generated from the run records in " + UB.site.runs_dir + ". Click a column to sort; hover a column for its definition; green = best in its column."));
  if (!UB.site.boards.length) main.append(el("p", {}, "No finished run yet: see Runs."));
  for (const b of UB.site.boards) main.append(el("h2", {}, b.task), boardTable(b));
  for (const b of UB.site.robustness || []) {
    main.append(el("h2", {}, `${b.task}: robustness probes (group ${b.group})`),
      el("p", { class: "muted" }, `Forget metric ${b.metric} of each model under each probe, and its recovery; lower is better for both. The target is the reference, never marked best. Rows under a probe in the table above are the same records.`),
      boardTable(b, `robustness-${b.task}-${b.group}`));
  }
}

function showRuns(main) {
  main.append(el("h1", {}, "Runs"));
  const rows = UB.site.runs.map((r) => ({ tr: el("tr", {}, el("td", {}, runLink(r.run_id)), el("td", {}, r.group), el("td", {}, r.role), el("td", {}, r.task), el("td", {}, r.model), el("td", {}, r.status), el("td", {}, r.created)), sort: [r.run_id, r.group, r.role, r.task, r.model, r.status, r.created] }));
  main.append(sortableTable(["run", "group", "role", "task", "model", "status", "created"].map((k) => ({ key: k, label: k })), rows, "runs"));
}

function headerTable(h) {
  const keys = ["run_id", "status", "role", "label", "seed", "created", "finished", "git_commit", "error"];
  const rows = keys.filter((k) => h[k] !== undefined && h[k] !== null).map((k) => el("tr", {}, el("th", {}, k), el("td", {}, String(h[k]))));
  const cfg = h.config || {}, backend = h.backend || {}, pk = h.packages || {};
  const identity = [
    ["model", cfg.model], ["weights sha256", backend.weights_sha256], ["backend", backend.backend_version],
    ["probe", h.probe ? `${h.probe.name} of ${h.probe.of}` : null],
    ["versions", Object.keys(pk).length ? Object.entries(pk).map(([k, v]) => k + " " + v).join(", ") : null],
  ].filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v))));
  const stages = Object.entries(h.stages || {}).map(([k, v]) => el("tr", {}, el("th", {}, "stage " + k), el("td", {}, (v.seconds ?? "?") + " s")));
  return el("table", { id: "run-header" }, rows, identity, stages);
}

function resultsTable(results) {
  const rows = [];
  for (const [task, metrics] of Object.entries(results))
    for (const [name, e] of Object.entries(metrics))
      rows.push(el("tr", {}, el("td", {}, task), el("td", {}, name), el("td", { class: "num" }, fmt(e.value)), el("td", { class: "num" }, fmt(e.stderr)), el("td", {}, arrow(e.higher_is_better)), el("td", { class: "muted" }, e.note || "")));
  return el("table", { id: "run-results" }, el("tr", {}, ["task", "metric", "value", "stderr", "better", "note"].map((x) => el("th", {}, x))), rows);
}

function sampleRows(runNo, group, task, samples, filter) {
  return samples.filter(filter).map((s) => el("tr", { class: "sample", "data-set": s.eval_set },
    el("td", {}, el("a", { href: `#/item/${encodeURIComponent(group)}/${encodeURIComponent(task)}/${encodeURIComponent(s.eval_set)}/${s.index}` }, s.eval_set + " #" + s.index)),
    el("td", { class: "text" }, s.question ?? ""), el("td", { class: "text" }, s.answer ?? ""), el("td", { class: "text generation" }, s.generation ?? "(not generated)"),
    el("td", { class: "text" }, Object.entries(s.scores).map(([k, v]) => k + " = " + fmt(v)).join("\n"))));
}

function samplesView(runNo, page, task) {
  const samples = page.samples[task];
  const sets = [...new Set(samples.map((s) => s.eval_set))];
  const metrics = [...new Set(samples.flatMap((s) => Object.keys(s.scores)))];
  const setSel = el("select", { id: "filter-set" }, el("option", { value: "" }, "all eval sets"), sets.map((s) => el("option", { value: s }, s)));
  const metricSel = el("select", { id: "filter-metric" }, el("option", { value: "" }, "any score"), metrics.map((m) => el("option", { value: m }, m)));
  const lo = el("input", { id: "filter-min", type: "number", step: "any", placeholder: "min" });
  const hi = el("input", { id: "filter-max", type: "number", step: "any", placeholder: "max" });
  const count = el("span", { id: "sample-count", class: "muted" });
  const tbody = el("tbody");
  let shown = null;
  const update = () => {
    // "change" follows "input" when the box loses focus, e.g. on a click on an item link:
    // redrawing the same rows then would replace the link under the pointer and lose the click.
    const state = [setSel.value, metricSel.value, lo.value, hi.value].join("\u0000");
    if (state === shown) return;
    shown = state;
    const m = metricSel.value, a = lo.value === "" ? -Infinity : Number(lo.value), b = hi.value === "" ? Infinity : Number(hi.value);
    const keep = (s) => (!setSel.value || s.eval_set === setSel.value) && (!m || (s.scores[m] !== null && s.scores[m] !== undefined && s.scores[m] >= a && s.scores[m] <= b));
    const rows = sampleRows(runNo, page.group, task, samples, keep);
    tbody.replaceChildren(...rows);
    count.textContent = `${rows.length} of ${samples.length} samples`;
  };
  [setSel, metricSel, lo, hi].forEach((x) => { x.oninput = update; x.onchange = update; });
  update();
  return [el("h3", {}, "Samples: " + task), el("div", { class: "filters" }, "eval set", setSel, "score", metricSel, "from", lo, "to", hi, count),
    el("table", { id: "samples" }, el("thead", {}, el("tr", {}, ["item", "question", "gold answer", "generation", "per-item scores"].map((x) => el("th", {}, x)))), tbody)];
}

function showRun(main, n) {
  const summary = UB.site.runs[n];
  if (!summary) { main.append(el("p", { class: "error" }, "no such run")); return; }
  main.append(el("h1", {}, "Run " + summary.run_id));
  runData(summary, (page) => {
    const h = page.header;
    main.append(headerTable(h), el("h2", {}, "Metrics"), resultsTable(page.results));
    for (const task of Object.keys(page.samples)) if (page.samples[task].length) main.append(...samplesView(n, page, task));
    main.append(el("h2", {}, "Full header (config, model identity, versions)"), el("pre", { id: "header-json" }, JSON.stringify(h, null, 2)));
  });
}

function showItem(main, group, task, set, index) {
  main.append(el("h1", {}, `Item ${set} #${index} of ${task}`), el("p", { class: "muted" }, "The same item across every model of run group " + group + "."));
  const order = { target: 0, retain: 1, base: 2, unlearned: 3 };
  const members = UB.site.runs.filter((r) => r.group === group).sort((a, b) => (order[a.role] ?? 9) - (order[b.role] ?? 9));
  const grid = el("div", { class: "sxs", id: "side-by-side" });
  main.append(grid);  // before any card: a run already loaded fills it synchronously
  let shownQuestion = false;
  members.forEach((r) => {
    const slot = el("div", { class: "slot" });  // keeps the role order whatever loads first
    grid.append(slot);
    runData(r, (page) => {
    const s = (page.samples[task] || []).find((x) => x.eval_set === set && String(x.index) === String(index));
    if (!s) return;
    if (!shownQuestion) { shownQuestion = true; grid.before(el("p", { id: "item-question" }, el("b", {}, "Question: "), s.question ?? ""), el("p", { id: "item-gold" }, el("b", {}, "Gold answer: "), s.answer ?? "")); }
    slot.replaceWith(el("div", { class: "card", "data-role": r.role }, el("h3", {}, `${r.label} (${r.role})`), el("div", { class: "generation" }, s.generation ?? "(not generated)"),
      el("p", { class: "muted" }, Object.entries(s.scores).map(([k, v]) => k + " = " + fmt(v)).join(", "))));
    });
  });
}

function showPlots(main) {
  main.append(el("h1", {}, "Plots"));
  if (UB.site.plot_note) main.append(el("p", { class: "muted" }, UB.site.plot_note));
  for (const p of UB.site.plots) main.append(el("h3", {}, p.title), el("img", { class: "plot", src: p.file, alt: p.title }));
}

// The comparison pages are Markdown from `unlearn-bench compare`: headings, lines, tables.
function markdown(text) {
  const out = el("div", { class: "markdown" });
  let table = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("|")) {
      const cells = line.slice(1, -1).split("|").map((c) => c.trim());
      if (cells.every((c) => /^-+$/.test(c))) continue;
      if (!table) { table = el("table", {}); out.append(table); table.append(el("tr", {}, cells.map((c) => el("th", {}, c)))); continue; }
      table.append(el("tr", {}, cells.map((c) => el("td", {}, c)))); continue;
    }
    table = null;
    if (line.startsWith("# ")) out.append(el("h2", {}, line.slice(2)));
    else if (line.trim()) out.append(el("p", {}, line.replace(/\*\*/g, "")));
  }
  return out;
}

function showCompare(main, i) {
  main.append(el("h1", {}, "Published comparisons"));
  if (!UB.site.comparisons.length) { main.append(el("p", { class: "muted" }, "No published table matches the tasks of these runs.")); return; }
  main.append(el("ul", {}, UB.site.comparisons.map((c, k) => el("li", {}, el("a", { href: "#/compare/" + k }, `${c.name} (task ${c.task})`)))));
  const page = UB.site.comparisons[Number(i || 0)];
  if (page) main.append(markdown(page.markdown));
}

function route() {
  const main = document.getElementById("main");
  main.replaceChildren();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "runs") showRuns(main);
  else if (parts[0] === "run") showRun(main, Number(parts[1]));
  else if (parts[0] === "item") showItem(main, parts[1], parts[2], parts[3], parts[4]);
  else if (parts[0] === "plots") showPlots(main);
  else if (parts[0] === "compare") showCompare(main, parts[1]);
  else showBoards(main);
}
