// The cmf-foundation web UI: a hash router over the REST API that `cmf serve` exposes (the same
// API as the CLI). Views: #/pipelines, #/pipeline/NAME, #/compare?ids=, #/carbon, #/recommend.
// Plain ES modules, no build step; everything it loads comes from this server.

import { hbars, vbars } from "./charts.js";
import { clip, duration, g, h, kv, lostReason, num, shortId, siteColours, status, statusText, text, time, visible, webLink } from "./dom.js";
import { GraphView } from "./graph.js";

const API = new URL("api/v1/", document.baseURI);
const PAGE = 1000;
const view = document.getElementById("view");
let renderSeq = 0;

// REST client -----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET api/v1/<path>?<params> as JSON; params with undefined/null/"" are left out, arrays repeat. */
export async function api(path, params = {}) {
  const url = new URL(path, API);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, item);
  }
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem("cmf-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  let r;
  try {
    r = await fetch(url, { headers });
  } catch {
    // no answer at all (the browser only says "Failed to fetch"): say which server and what to do
    throw new ApiError(0, `The server at ${API.origin} does not answer (is \`cmf serve\` still running?). ` +
      "Reload the page once it is back.");
  }
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) throw new ApiError(r.status, body?.message || `${r.status} ${r.statusText} (${url.pathname})`);
  return body;
}

/** Every item of a paged list (limit/offset/next_offset). */
async function all(path, params = {}) {
  const items = [];
  let offset = 0;
  for (;;) {
    const page = await api(path, { ...params, limit: PAGE, offset });
    items.push(...page.items);
    if (page.next_offset === null || page.next_offset === undefined) return items;
    offset = page.next_offset;
  }
}

/** Like api(), but null when the route is missing (an older server) instead of failing. */
async function optional(path, params) {
  try {
    return await api(path, params);
  } catch (e) {
    if (e.status === 404 && /Not Found/i.test(e.message)) return null;
    throw e;
  }
}

const enc = encodeURIComponent;
/** Natural order of names: param_2 before param_10. */
const natural = (x, y) => x.localeCompare(y, "en", { numeric: true });
/** An object's entries in natural order of their keys. */
const entries = (obj) => Object.entries(obj || {}).sort(([a], [b]) => natural(a, b));
const pipelineHref = (name, q = "") => `#/pipeline/${enc(name)}${q ? `?${q}` : ""}`;

// shell -----------------------------------------------------------------------------------------
/** Append children to parent, leaving out null/undefined/false (Element.append would print them). */
function put(parent, ...children) {
  parent.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function section(title, ...children) {
  return h("section", { class: "panel" }, title ? h("h2", {}, title) : null, ...children);
}

/** No energy record behind a total: "–" (not measured), not a "0" that reads as no energy used. */
function unmeasured() {
  return h("span", { class: "unmeasured", title: "not measured: no energy record for these executions" }, "–");
}

function card(label, value, sub) {
  return h("div", { class: "card" }, h("div", { class: "card-label" }, label),
    h("div", { class: "card-value" }, value), sub ? h("div", { class: "card-sub" }, sub) : null);
}

function table(head, rows, attrs = {}) {
  return h("table", { class: "grid", ...attrs },
    h("thead", {}, h("tr", {}, head.filter((c) => c !== null).map((c) => (Array.isArray(c)
      ? h("th", { scope: "col", class: c[1] }, c[0]) : h("th", { scope: "col" }, c))))),
    h("tbody", {}, rows));
}

function errorBox(e) {
  if (e.status === 401) {
    const input = h("input", { type: "password", name: "token", autocomplete: "off",
      "aria-label": "Server token" });
    return h("form", { class: "error", onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("cmf-token", input.value.trim());
      route();
      serverInfo();
    } }, h("p", {}, e.message), h("label", {}, "Token ", input), " ", h("button", {}, "Use token"));
  }
  return h("div", { class: "error", role: "alert" }, e.message || String(e));
}

/** A selector that finds `el` (a control of the view) again in the view drawn anew, or null. */
function focusKey(el) {
  if (!el || el === view || !view.contains(el)) return null;
  // a tab: the one chosen (Enter on a tab draws the view for it; Back/Forward choose another)
  if (el.getAttribute("role") === "tab") return '[role="tab"][aria-selected="true"]';
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.name) {
    const value = el.type === "checkbox" ? `[value="${CSS.escape(el.value)}"]` : "";
    return `${el.tagName.toLowerCase()}[name="${CSS.escape(el.name)}"]${value}`;
  }
  return null;
}

let shownPath = null;

/** After a view is drawn, where the keyboard focus goes: the view's control the user was on
 *  when only its options changed (a filter, a tab, a box: the old one is gone), the view's
 *  heading when the user went to another view (so a screen reader reads where it is); nowhere
 *  on the first load. */
function placeFocus(path, key) {
  const before = shownPath;
  shownPath = path;
  if (before === null) return;
  const again = before === path && key ? view.querySelector(key) : null;
  if (again) {
    again.focus();
    return;
  }
  if (before === path && !view.contains(document.activeElement) && document.activeElement !== document.body) return;
  const heading = view.querySelector("h1") || view;
  if (heading !== view) heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: true });
}

async function route() {
  const seq = ++renderSeq;
  const hash = location.hash.replace(/^#/, "") || "/pipelines";
  const [path, qs] = hash.split("?");
  const key = focusKey(document.activeElement);
  const query = new URLSearchParams(qs || "");
  // [address, view, its navigation link, the page's title (what a tab, the history and a
  // screen reader name it by)]
  const routes = [
    [/^\/pipelines\/?$/, viewPipelines, "pipelines", () => "Pipelines"],
    [/^\/pipeline\/(.+)$/, viewPipeline, "pipelines", ([name]) => `${name} · Pipeline`],
    [/^\/compare\/?$/, viewCompare, "pipelines", () => "Compare runs"],
    [/^\/carbon\/?$/, viewCarbon, "carbon", () => "Carbon"],
    [/^\/recommend\/?$/, viewRecommend, "recommend", () => "Recommendations"],
  ];
  const found = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("nav a")) {
    const here = Boolean(found) && a.dataset.nav === found[2];
    a.classList.toggle("active", here);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const out = h("div", { class: "page" });
  view.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  view.setAttribute("aria-busy", "true");
  const live = () => seq === renderSeq;
  try {
    if (!found) throw new Error(`No page ${path}; try #/pipelines`);
    // a name typed into the address may hold a bare "%": taken as it is, not "URI malformed"
    const args = path.match(found[0]).slice(1).map((x) => {
      try {
        return decodeURIComponent(x);
      } catch {
        return x;
      }
    });
    document.title = visible(`${found[3](args)} · cmf-foundation`);
    await found[1](out, args, query, live);
    if (live()) view.replaceChildren(out);
  } catch (e) {
    if (!found) document.title = "No such page · cmf-foundation";
    if (live()) view.replaceChildren(errorBox(e));
    console.warn(e);
  } finally {
    if (live()) {
      view.removeAttribute("aria-busy");
      view.dataset.ready = hash;
      placeFocus(path, key);
    }
  }
}

async function serverInfo() {
  try {
    const info = await api("health");
    document.getElementById("server").textContent =
      visible(`site ${info.site} · ${info.store} store · v${info.version}`);
  } catch {
    // the header line is a courtesy; the views report errors themselves
  }
}

// #/pipelines -----------------------------------------------------------------------------------
async function viewPipelines(out) {
  // summary: each pipeline's run count and latest run in the same pages (not two requests each)
  const [pipelines, carbon] = await Promise.all([all("pipelines", { summary: true }),
    optional("carbon", { group_by: "pipeline" })]);
  const byName = new Map((carbon?.groups || []).map((grp) => [grp.pipeline, grp]));
  const allSites = [...new Set([...pipelines.map((p) => p.site),
    ...(carbon?.groups || []).flatMap((grp) => grp.sites)])];
  const colours = siteColours(allSites);
  const siteChip = (site) => h("span", { class: "chip", style: `--c:${colours.get(site)}` }, site);
  const rows = pipelines.map((p) => {
    const grp = byName.get(p.name);
    const { executions: total, last_execution: last } = p;
    return h("tr", { dataset: { pipeline: p.name } },
      h("td", { class: "name" }, h("a", { href: pipelineHref(p.name) }, p.name)),
      h("td", {}, siteChip(p.site)),
      h("td", {}, (grp?.sites || []).map(siteChip)),
      h("td", { class: "n" }, String(total)),
      h("td", {}, last ? time(last.started_at) : "–"),
      h("td", {}, last ? status(last) : "–"),
      h("td", { class: "n kwh" }, grp?.with_energy ? num(grp.energy_kwh) : unmeasured()),
      h("td", { class: "n co2" }, grp?.with_energy ? num(grp.co2e_kg) : unmeasured()));
  });
  const total = carbon?.total;
  put(out, h("h1", {}, "Pipelines"),
    h("div", { class: "cards" },
      card("Pipelines", String(pipelines.length)),
      card("Executions", String(pipelines.reduce((a, p) => a + p.executions, 0))),
      card("Sites", String(allSites.length), allSites.sort().join(", ")),
      card("Energy", total ? num(total.energy_kwh, { id: "total-kwh" }) : "–", "kWh"),
      card("Emissions", total ? num(total.co2e_kg, { id: "total-co2" }) : "–", "kgCO2e")),
    section(null, pipelines.length ? table(
      ["Pipeline", "Site", "Ran at", ["Executions", "n"], "Last run (UTC)", "Status", ["kWh", "n"], ["kgCO2e", "n"]],
      rows, { id: "pipelines" }) : h("p", { class: "empty" },
      "No pipelines yet. Record one with the Cmf API, an orchestrator integration, or ",
      h("code", {}, "POST /api/v1/lineage"), ".")),
    carbon ? null : h("p", { class: "note" }, "This server has no carbon route (/api/v1/carbon)."));
}

// #/pipeline/NAME -------------------------------------------------------------------------------
const PHASE_COLOURS = { training: "#1d4ed8", retraining: "#7c3aed", inference: "#0f766e",
  preprocessing: "#a16207", evaluation: "#be185d", other: "#64748b" };

function executionNode(e, name, colours) {
  return {
    id: e.id, kind: "execution", order: `1 ${e.stage} ${e.started_at}`, w: 178, h: 56,
    lines: [e.pipeline === name ? e.stage : `${e.pipeline}/${e.stage}`,
      `${e.site} · ${shortId(e.id)}`,
      e.energy_kwh === null || e.energy_kwh === undefined ? statusText(e) : `${g(e.energy_kwh)} kWh`],
    title: `${e.pipeline}/${e.stage} at ${e.site} (${statusText(e)})\n${e.id}${e.lost ? `\n${lostReason(e)}` : ""}`,
    cls: `execution status-${e.status}${e.lost ? " lost" : ""}${e.pipeline === name ? "" : " foreign"}`,
    colour: colours.get(e.site),
  };
}

/** A value one task handed the next in memory (an orchestrator's task result, `role`
 *  task_value): drawn as a "via task result" edge between the two executions unless the page
 *  is asked to show task results, as `cmf lineage` folds it unless given --all. */
const isTaskValue = (a) => a?.role === "task_value";
const TASK_VALUE_TEXT = "task result: a value one task passed to the next in memory";

function artifactNode(a, colours) {
  const value = isTaskValue(a);
  return {
    id: a.id, kind: "artifact", order: `0 ${a.type} ${a.name}`, w: 178, h: 42, rx: 18,
    lines: [a.name, `${value ? "task result" : a.type} · ${shortId(a.id)}`],
    title: `${value ? `${TASK_VALUE_TEXT} (${a.type})` : a.type} ${a.name} (first seen at ${a.site})\n${a.id}\n${a.uri}`,
    cls: `artifact type-${String(a.type).toLowerCase()}${value ? " task-value" : ""}`, colour: colours.get(a.site),
  };
}

/** The "via task result" edges of task values, one per (producer, consumer) pair. */
function taskValueEdges(links, execs) {
  return [...links.values()].map(({ from, to, values }) => {
    const a = execs.get(from);
    const b = execs.get(to);
    const cross = a.site !== b.site ? " cross-site" : "";
    return { from, to, values, cls: `task-value${cross}`,
      title: `via task result: ${a.stage} → ${b.stage}\n${values.map((v) => `${v.name}\n${v.id}`).join("\n")}`,
      // its name for the keyboard and screen readers (the edge is a button: Enter shows it)
      label: `via task result: ${a.stage} at ${a.site} → ${b.stage} at ${b.site} ` +
        `(${values.map((v) => v.name).join(", ")})` };
  });
}

/** A lineage graph with more nodes than this is summarised: the runs of each stage with more
 *  than one run are drawn as one node (see foldStages). */
export const FOLD_NODES = 500;
/** Rows of the executions table drawn at first, and added by "Show more". */
export const TABLE_PAGE = 100;

const stageKey = (e) => `${e.pipeline}/${e.stage}`;

/** Summarise a dense graph: the executions of each stage with two or more drawn runs (unless
 *  its key is in `expanded`) become one node, "train · 1,000 runs"; an artifact touched only
 *  by runs of folded stages (each sweep run's own model; what one folded stage wrote and the
 *  next read) joins one node per set of such stages and type, "Model × 1,000"; an artifact an
 *  unfolded execution touched (the dataset one prepare run wrote and every run read) stays a
 *  node. Edges between the same two nodes are drawn once. Returns {nodes, edges, groups}
 *  (group id -> {key, kind, execs, arts}); groups is empty when nothing was folded. */
function foldStages(nodes, edges, execs, expanded, name) {
  const runs = new Map();
  for (const n of nodes) {
    if (n.kind !== "execution") continue;
    const k = stageKey(execs.get(n.id));
    (runs.get(k) || runs.set(k, []).get(k)).push(n.id);
  }
  const groupOf = new Map(); // node id -> group id
  const groups = new Map();
  for (const [k, ids] of runs) {
    if (ids.length < 2 || expanded.has(k)) continue;
    const gid = `group:${k}`;
    groups.set(gid, { key: k, kind: "execution", execs: ids, arts: [] });
    ids.forEach((id) => groupOf.set(id, gid));
  }
  if (!groups.size) return { nodes, edges, groups };
  // an artifact every edge of which goes to one folded stage joins it
  const touch = new Map();
  for (const e of edges) {
    for (const [a, x] of [[e.from, e.to], [e.to, e.from]]) {
      if (execs.has(a)) continue;
      (touch.get(a) || touch.set(a, new Set()).get(a)).add(groupOf.get(x) ?? "-");
    }
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const [a, gs] of touch) {
    if (gs.has("-")) continue;
    const keys = [...gs].sort().map((gid) => groups.get(gid).key);
    const type = byId.get(a).lines[1].split(" · ")[0];
    const agid = `group:${keys.join(" ")}:${type}`;
    (groups.get(agid) || groups.set(agid, { key: keys[0], keys, kind: "artifact", type, execs: [], arts: [] })
      .get(agid)).arts.push(a);
    groupOf.set(a, agid);
  }
  const drawn = nodes.filter((n) => !groupOf.has(n.id));
  for (const [gid, grp] of groups) {
    const first = byId.get(grp.kind === "execution" ? grp.execs[0] : grp.arts[0]);
    const count = grp.kind === "execution" ? grp.execs.length : grp.arts.length;
    const [pipe, stage] = [grp.key.slice(0, grp.key.indexOf("/")), grp.key.slice(grp.key.indexOf("/") + 1)];
    const label = pipe === name ? stage : grp.key;
    drawn.push(grp.kind === "execution" ? {
      ...first, id: gid, kind: "group", order: `1 ${stage}`,
      lines: [label, `${count.toLocaleString("en")} runs (folded)`, "click for the runs"],
      title: `${count} runs of ${grp.key}, drawn as one node`, cls: `${first.cls} group`,
    } : {
      ...first, id: gid, kind: "group", order: `0 ${grp.type} ${stage}`,
      lines: [`${grp.type} × ${count.toLocaleString("en")}`, `of ${label} runs (folded)`],
      title: `${count} ${grp.type} artifacts, each touched only by runs of ${grp.keys.join(" and ")}`, cls: `${first.cls} group`,
    });
  }
  const seen = new Set();
  const folded = [];
  for (const e of edges) {
    const from = groupOf.get(e.from) ?? e.from;
    const to = groupOf.get(e.to) ?? e.to;
    if (from === e.from && to === e.to) {
      folded.push(e);
      continue;
    }
    const k = `${from} ${to} ${e.cls}`;
    if (seen.has(k) || from === to) continue;
    seen.add(k);
    folded.push({ from, to, cls: `${e.cls || ""} group` });
  }
  return { nodes: drawn, edges: folded, groups };
}

async function viewPipeline(out, [name], query) {
  const upstream = query.get("upstream") === "1";
  let showValues = query.get("task_results") === "1";
  const [pipeline, graph, carbon] = await Promise.all([
    api(`pipelines/${enc(name)}`),
    api("graph", { pipeline: name, upstream: upstream ? "true" : undefined }),
    optional("carbon", { pipeline: name, group_by: "stage" }),
  ]);
  const colours = siteColours(graph.sites);
  const execs = new Map(graph.executions.map((e) => [e.id, e]));
  const arts = new Map(graph.artifacts.map((a) => [a.id, a]));
  const wanted = query.get("sites");
  const shown = new Set(wanted ? wanted.split(",").filter((x) => graph.sites.includes(x)) : graph.sites);
  const own = graph.executions.filter((e) => e.pipeline === name);
  const total = carbon?.total;

  // header
  put(out, h("h1", {}, h("a", { href: "#/pipelines", class: "crumb" }, "Pipelines"), " / ", name),
    h("div", { class: "cards" },
      card("Executions", String(graph.total_executions),
        graph.truncated ? `latest ${own.length} shown` : null),
      card("Sites", String(new Set(own.map((e) => e.site)).size),
        [...new Set(own.map((e) => e.site))].sort().join(", ")),
      card("Stages", String(pipeline.stages.length)),
      card("Energy", total?.with_energy ? num(total.energy_kwh, { id: "pipeline-kwh" }) : unmeasured(), "kWh"),
      card("Emissions", total?.with_energy ? num(total.co2e_kg, { id: "pipeline-co2" }) : unmeasured(), "kgCO2e"),
      card("Created", time(pipeline.created_at).slice(0, 10),
        `${time(pipeline.created_at).slice(11)} UTC at ${pipeline.site}`)));

  // details panel (shared by the stage DAG and the lineage graph), over the graph's right side
  const PANEL = 380;
  const detailBody = h("div", { class: "details-body" });
  const details = h("aside", { id: "details", class: "details", "aria-live": "polite", hidden: true },
    h("button", { type: "button", class: "close", title: "Close", "aria-label": "Close details",
      onclick: () => { lineage.select(null); dag.select(null, { notify: false }); lineage.highlight(null); } }, "×"),
    detailBody);
  const showDetails = (...children) => {
    detailBody.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    details.hidden = false;
  };
  let detailSeq = 0;
  const setUrl = (node) => {
    const q = new URLSearchParams();
    if (upstream) q.set("upstream", "1");
    if (showValues) q.set("task_results", "1");
    if (shown.size !== graph.sites.length) q.set("sites", [...shown].join(","));
    if (node) q.set("node", node);
    history.replaceState(null, "", pipelineHref(name, q.toString()));
  };

  // stage DAG
  const stageStats = new Map(pipeline.stages.map((st) => [st.name, { runs: 0, sites: new Set() }]));
  for (const e of own) {
    const st = stageStats.get(e.stage) || stageStats.set(e.stage, { runs: 0, sites: new Set() }).get(e.stage);
    st.runs += 1;
    st.sites.add(e.site);
  }
  const stageCarbon = new Map((carbon?.groups || []).map((grp) => [grp.stage, grp]));
  const phaseOf = new Map((carbon?.stages || []).filter((x) => x.pipeline === name)
    .map((x) => [x.stage, x]));
  const dagHost = h("div", { class: "graph-host dag-host", id: "stage-dag" });
  const dag = new GraphView(dagHost, { label: "Stage graph", onSelect: (id) => {
    lineage.select(null, { notify: false });
    if (!id) {
      lineage.highlight(null);
      details.hidden = true;
      return;
    }
    const stage = id.slice("stage:".length);
    lineage.highlight(new Set([...own.filter((e) => e.stage === stage).map((e) => e.id), `group:${name}/${stage}`]));
    showStage(stage);
  } });
  const dagNodes = [...stageStats].map(([stage, st]) => {
    const phase = phaseOf.get(stage)?.phase || "other";
    const grp = stageCarbon.get(stage);
    return { id: `stage:${stage}`, kind: "stage", order: stage, w: 188, h: 58, lines: [stage,
      `${st.runs} run${st.runs === 1 ? "" : "s"} · ${phase}`,
      grp?.with_energy ? `${g(grp.energy_kwh)} kWh` : "energy not measured"], title: `stage ${stage} (${phase})`,
    cls: "stage", colour: PHASE_COLOURS[phase] || PHASE_COLOURS.other };
  });
  const dagEdges = pipeline.stage_edges.map(([a, b]) => ({ from: `stage:${a}`, to: `stage:${b}` }));

  function showStage(stage) {
    const st = stageStats.get(stage);
    const grp = stageCarbon.get(stage);
    const ph = phaseOf.get(stage);
    const record = pipeline.stages.find((x) => x.name === stage);
    showDetails(h("h3", {}, `Stage ${stage}`),
      kv([["Pipeline", name], ["Runs", String(st?.runs ?? 0)],
        ["Sites", [...(st?.sites || [])].sort().join(", ") || "–"],
        ["Phase", ph ? `${ph.phase} (${ph.source})` : "–"],
        ["Energy (kWh)", grp?.with_energy ? num(grp.energy_kwh) : unmeasured()],
        ["Emissions (kgCO2e)", grp?.with_energy ? num(grp.co2e_kg) : unmeasured()],
        ["Created", record ? `${time(record.created_at)} UTC at ${record.site}` : undefined]]),
      propsTable("Properties", record?.properties), propsTable("Custom properties", record?.custom_properties),
      h("p", { class: "hint" }, "Its executions are highlighted in the lineage graph."));
  }

  // lineage graph
  const graphHost = h("div", { class: "graph-host", id: "lineage" });
  const lineage = new GraphView(graphHost, { label: "Lineage graph", spacing: { colGap: 56, rowGap: 16 }, onSelect: (id) => {
    dag.select(null, { notify: false });
    lineage.highlight(null);
    setUrl(groups.has(id) ? null : id);
    showNode(id);
    if (id) lineage.reveal(id, PANEL);
  }, onEdge: (edge) => {
    if (!edge.values) return false;
    dag.select(null, { notify: false });
    lineage.highlight(null);
    setUrl(null);
    detailSeq += 1;
    showDetails(viaDetails(edge));
    return true;
  } });

  // a dense graph is summarised (foldStages): its groups, and the stages drawn run by run
  let groups = new Map();
  const expanded = new Set();
  const groupOfNode = (id) => [...groups].find(([, grp]) => grp.execs.includes(id) || grp.arts.includes(id))?.[0];

  /** The nodes and edges drawn, how many task values are folded into edges, and every node
   *  before stages were folded. */
  function lineageData() {
    const visibleExecs = graph.executions.filter((e) => shown.has(e.site));
    const ids = new Set(visibleExecs.map((e) => e.id));
    const edges = [];
    const used = new Set();
    const draw = (ev) => {
      used.add(ev.artifact_id);
      const e = execs.get(ev.execution_id);
      const a = arts.get(ev.artifact_id);
      const cross = a.site !== e.site ? " cross-site" : "";
      edges.push(ev.type === "INPUT"
        ? { from: a.id, to: e.id, cls: `input${cross}` }
        : { from: e.id, to: a.id, cls: `output${cross}` });
    };
    const values = new Map(); // task value id -> its events with drawn executions
    for (const ev of graph.edges) {
      if (!ids.has(ev.execution_id) || !arts.has(ev.artifact_id)) continue;
      if (!showValues && isTaskValue(arts.get(ev.artifact_id))) {
        (values.get(ev.artifact_id) || values.set(ev.artifact_id, []).get(ev.artifact_id)).push(ev);
      } else {
        draw(ev);
      }
    }
    // folded: an edge from each execution that wrote the value to each that read it; a value
    // whose producer is not drawn stays a node (as in cmf lineage), one nobody drawn read
    // (the last task's result) is left out
    const links = new Map();
    let folded = 0;
    for (const [aid, evs] of values) {
      const writers = [...new Set(evs.filter((ev) => ev.type === "OUTPUT").map((ev) => ev.execution_id))];
      const readers = [...new Set(evs.filter((ev) => ev.type === "INPUT").map((ev) => ev.execution_id))];
      if (!writers.length) {
        evs.forEach(draw);
        continue;
      }
      folded += 1;
      for (const from of writers) {
        for (const to of readers) {
          if (from === to) continue;
          const k = `${from} ${to}`;
          (links.get(k) || links.set(k, { from, to, values: [] }).get(k)).values.push(arts.get(aid));
        }
      }
    }
    edges.push(...taskValueEdges(links, execs));
    const nodes = [...graph.artifacts.filter((a) => used.has(a.id)).map((a) => artifactNode(a, colours)),
      ...visibleExecs.map((e) => executionNode(e, name, colours))];
    if (nodes.length <= FOLD_NODES) {
      groups = new Map();
      return [nodes, edges, folded, nodes];
    }
    const sum = foldStages(nodes, edges, execs, expanded, name);
    groups = sum.groups;
    return [sum.nodes, sum.edges, folded, nodes];
  }

  /** Select node `id`; a task value folded into an edge is drawn as a node first. */
  function pick(id) {
    if (!showValues && !lineage.nodes?.has(id) && isTaskValue(arts.get(id))) {
      showValues = true;
      valuesBox.checked = true;
      redraw();
    }
    const gid = lineage.nodes?.has(id) ? null : groupOfNode(id);
    if (gid) {
      expanded.add(groups.get(gid).key);
      redraw();
    }
    lineage.select(id);
  }

  /** The details of a folded stage or its artifacts: how many, the latest, and a button that
   *  draws the stage run by run. */
  function groupDetails(gid) {
    const grp = groups.get(gid);
    const ids = grp.kind === "execution" ? grp.execs : grp.arts;
    const latest = ids.slice(-20).reverse();
    const link = (id, label) => h("a", { href: "#", onclick: (ev) => {
      ev.preventDefault();
      pick(id);
    } }, label);
    return [h("h3", {}, grp.kind === "execution" ? `Stage ${grp.key}: ${ids.length} runs` : `${ids.length} ${grp.type} artifacts of ${grp.key}`),
      h("p", { class: "muted" }, `The graph has more than ${FOLD_NODES} nodes, so the runs of each stage are drawn as one node` +
        (grp.kind === "execution" ? "." : ", with the artifacts that only they touched.")),
      h("p", { class: "actions" }, h("button", { type: "button", class: "expand", onclick: () => {
        expanded.add(grp.key);
        redraw();
        details.hidden = true;
      } }, `Draw the ${grp.execs.length || ids.length} ${grp.kind === "execution" ? "runs" : "artifacts"} one by one`)),
      h("h4", {}, ids.length > latest.length ? `Latest ${latest.length}` : "All"),
      h("ul", { class: "links" }, latest.map((id) => h("li", {}, grp.kind === "execution"
        ? link(id, `${execs.get(id).stage} (${shortId(id)}) ${time(execs.get(id).started_at)}`)
        : link(id, `${arts.get(id).name} (${shortId(id)})`))))];
  }

  function viaDetails(edge) {
    const a = execs.get(edge.from);
    const b = execs.get(edge.to);
    const run = (e) => h("a", { href: "#", onclick: (ev) => {
      ev.preventDefault();
      pick(e.id);
    } }, `${e.stage} at ${e.site} (${shortId(e.id)})`);
    return [h("h3", {}, "Via task result"),
      h("p", { class: "muted" }, `${edge.values.length === 1 ? "A value" : "Values"} ${a.stage} returned and ${b.stage} ` +
        "took as input, passed in memory by the orchestrator (not a file of yours)."),
      kv([["From", run(a)], ["To", run(b)]]),
      edge.values.map((v) => [h("h4", {}, "Task result"),
        kv([["Name", h("span", { class: "mono" }, v.name)], ["Digest", h("span", { class: "mono digest" }, v.id)],
          ["Type", v.type], ["URI", h("span", { class: "mono" }, v.uri)]], { class: "kv task-value" }),
        h("p", { class: "actions" }, h("a", { href: "#", onclick: (ev) => {
          ev.preventDefault();
          pick(v.id);
        } }, "Show it as a node"))])];
  }

  async function showNode(id) {
    const seq = ++detailSeq;
    if (!id) {
      details.hidden = true;
      return;
    }
    if (groups.has(id)) {
      showDetails(groupDetails(id));
      return;
    }
    showDetails(h("p", { class: "loading" }, "Loading…"));
    try {
      const body = execs.has(id) ? await executionDetails(id, pick) : await artifactDetails(id, pick);
      if (seq === detailSeq) showDetails(body);
    } catch (e) {
      if (seq === detailSeq) showDetails(errorBox(e));
    }
  }

  const counter = h("span", { class: "muted", id: "graph-count" });
  const summary = h("p", { class: "note", id: "graph-summary", hidden: true });
  const anyValues = graph.artifacts.some(isTaskValue);
  const valuesBox = h("input", { type: "checkbox", name: "task_results", checked: showValues, onchange: (ev) => {
    showValues = ev.target.checked;
    redraw();
    setUrl(lineage.selected);
  } });
  const redraw = () => {
    const [drawnNodes, edges, folded, nodes] = lineageData();
    lineage.setGraph(drawnNodes, edges);
    // as tall as the graph needs at the width of the view (within limits), then fit
    const { width, height } = lineage.layout;
    const k = Math.min(1, (graphHost.clientWidth - 48) / Math.max(1, width));
    graphHost.style.height = `${Math.round(Math.max(380, Math.min(680, height * k + 56)))}px`;
    lineage.fit();
    const nExec = nodes.filter((n) => n.kind === "execution").length;
    const nValues = nodes.filter((n) => isTaskValue(arts.get(n.id))).length;
    // task results are not counted as the user's artifacts: folded, or counted apart
    counter.textContent = `${nExec} executions, ${nodes.length - nExec - nValues} artifacts` +
      (nValues ? `, ${nValues} task result${nValues === 1 ? "" : "s"}` : "") +
      (folded ? ` (${folded} task result${folded === 1 ? "" : "s"} folded)` : "");
    const nGroups = [...groups.values()].filter((grp) => grp.kind === "execution").length;
    summary.hidden = !groups.size;
    summary.textContent = groups.size ? `${nodes.length.toLocaleString("en")} nodes are too many to read: ` +
      `the runs of ${nGroups} stage${nGroups === 1 ? "" : "s"} are each drawn as one node ` +
      `(${drawnNodes.length} nodes drawn). Click such a node for its runs or to draw them one by one.` : "";
    counter.title = folded ? "Values passed between tasks in memory are drawn as dashed 'via task result' " +
      "edges between the two executions (a result no drawn execution read is left out); " +
      "'show task results' draws them as nodes." : "";
  };
  const siteBoxes = graph.sites.map((site) => h("label", { class: "chip check", style: `--c:${colours.get(site)}` },
    h("input", { type: "checkbox", name: "site", value: site, checked: shown.has(site), onchange: (ev) => {
      if (ev.target.checked) shown.add(site);
      else shown.delete(site);
      redraw();
      setUrl(lineage.selected);
    } }), site));
  const toolbar = h("div", { class: "toolbar" },
    h("span", { class: "muted" }, "Sites:"), siteBoxes,
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "upstream", checked: upstream,
      onchange: (ev) => {
        const q = new URLSearchParams();
        if (ev.target.checked) q.set("upstream", "1");
        if (showValues) q.set("task_results", "1");
        location.hash = pipelineHref(name, q.toString());
      } }), " upstream pipelines"),
    anyValues ? h("label", { class: "check", title: "Draw each value passed between tasks in memory " +
      "(an orchestrator's task result) as a node, not as a 'via task result' edge" }, valuesBox, " show task results") : null,
    h("span", { class: "spacer" }),
    counter,
    h("button", { type: "button", title: "Zoom in", "aria-label": "Zoom in", onclick: () => lineage.zoomBy(1.25) }, "+"),
    h("button", { type: "button", title: "Zoom out", "aria-label": "Zoom out", onclick: () => lineage.zoomBy(0.8) }, "−"),
    h("button", { type: "button", title: "Fit to view", onclick: () => lineage.fit() }, "Fit"));
  const legend = h("div", { class: "legend" },
    h("span", { class: "lg lg-execution" }, "execution"), h("span", { class: "lg lg-dataset" }, "dataset"),
    h("span", { class: "lg lg-model" }, "model"), h("span", { class: "lg lg-metrics" }, "metrics"),
    h("span", { class: "lg lg-cross" }, "crosses sites"),
    anyValues ? h("span", { class: "lg lg-task-value", title: TASK_VALUE_TEXT }, "via task result") : null,
    h("span", { class: "muted" }, "The band on each node is the colour of its site. " +
      "Click a node for its details; wheel to zoom, drag to pan."));

  // executions table, with the selection for #/compare
  const picked = new Set();
  const compareBtn = h("button", { type: "button", id: "compare", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...picked].join(",")}`;
  } }, "Compare selected");
  // the run in the orchestrator's UI (Airflow, Prefect, KFP), a column only when a run has one
  const runLink = (e) => e.run_url && webLink(e.run_url, orchestratorOf(e));
  const anyRunLink = own.some(runLink);
  const execRow = (e) => h("tr", { dataset: { id: e.id } },
    h("td", {}, h("input", { type: "checkbox", "aria-label": `select ${e.stage} ${shortId(e.id)}`, onchange: (ev) => {
      if (ev.target.checked) picked.add(e.id);
      else picked.delete(e.id);
      compareBtn.disabled = picked.size < 2;
      compareBtn.textContent = `Compare selected (${picked.size})`;
    } })),
    h("td", { class: "name" }, h("a", { href: "#", onclick: (ev) => {
      ev.preventDefault();
      if (!shown.has(e.site)) {
        shown.add(e.site);
        siteBoxes.forEach((b) => { b.querySelector("input").checked = shown.has(b.querySelector("input").value); });
        redraw();
      }
      pick(e.id);
      graphHost.scrollIntoView({ block: "nearest" });
    } }, e.stage)),
    h("td", { class: "mono run-id" }, shortId(e.id)),
    h("td", {}, e.site), h("td", {}, status(e)), h("td", {}, time(e.started_at)),
    h("td", { class: "n" }, duration(e.ended_at !== null && e.ended_at !== undefined ? e.ended_at - e.started_at : null)),
    h("td", { class: "n" }, num(e.energy_kwh)), h("td", { class: "n" }, num(e.co2e_kg)),
    h("td", { class: "params" }, clip(entries(e.params).map(([k, v]) => `${k}=${text(v)}`).join(", "), 80)),
    anyRunLink ? h("td", { class: "run-url" }, orchestratorCell(e)) : null);
  // drawn a page at a time, latest first: 2,000 rows at once freeze the page
  const newestFirst = [...own].reverse();
  const rowCount = h("span", { class: "muted", id: "executions-count" });
  const moreBtn = h("button", { type: "button", id: "more-executions", onclick: () => showRows(TABLE_PAGE) });
  const allBtn = h("button", { type: "button", id: "all-executions", onclick: () => showRows(newestFirst.length) });
  const execTable = table([h("span", { class: "visually-hidden" }, "Select"), "Stage", "Run", "Site", "Status", "Started (UTC)",
    ["Duration", "n"], ["kWh", "n"], ["kgCO2e", "n"], "Parameters", anyRunLink ? "Orchestrator" : null],
  [], { id: "executions" });
  const tbody = execTable.querySelector("tbody") || execTable;
  let rowsShown = 0;
  function showRows(n) {
    const upto = Math.min(newestFirst.length, rowsShown + n);
    tbody.append(...newestFirst.slice(rowsShown, upto).map(execRow));
    rowsShown = upto;
    const left = newestFirst.length - rowsShown;
    rowCount.textContent = left ? `Showing the latest ${rowsShown} of ${newestFirst.length} executions (${left} not shown).` : "";
    moreBtn.hidden = allBtn.hidden = !left;
    moreBtn.textContent = `Show ${Math.min(TABLE_PAGE, left)} more`;
    allBtn.textContent = `Show all ${newestFirst.length}`;
  }
  showRows(TABLE_PAGE);

  put(out, 
    section("Stages", dagHost),
    section("Lineage", toolbar, summary, h("div", { class: "lineage" }, graphHost, details), legend,
      graph.truncated ? h("p", { class: "note" }, `Only the latest ${own.length} of ${graph.total_executions} executions are drawn.`) : null),
    section("Executions", h("div", { class: "toolbar" }, compareBtn,
      h("span", { class: "muted" }, "Pick two or more runs to compare their parameters and metrics.")),
    execTable, h("p", { class: "toolbar" }, rowCount, moreBtn, allBtn),
    own.length ? null : h("p", { class: "empty" }, "No executions of this pipeline are recorded yet.")));

  // draw once the page is in the document (fit needs sizes)
  requestAnimationFrame(() => {
    dag.setGraph(dagNodes, dagEdges);
    dag.fit();
    redraw();
    const node = query.get("node");
    if (node) pick(node);
  });
}

function propsTable(title, props) {
  const entries = Object.entries(props || {});
  if (!entries.length) return null;
  return [h("h4", {}, title), kv(entries.map(([k, v]) => [k, h("span", { class: "mono" }, text(v))]))];
}

function linkList(items, label, onPick) {
  if (!items.length) return h("p", { class: "muted" }, "none");
  return h("ul", { class: "links" }, items.map((x) => h("li", {},
    h("a", { href: "#", onclick: (ev) => {
      ev.preventDefault();
      onPick(x.id);
    } }, label(x)))));
}

/** A normalised seed score with its sign: "+0.42". */
const signed = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;

/** Where a normalised score stands, as cmf recommend says it (recommender.standing). */
function standing(x) {
  if (x >= 0.995) return "(best)";
  if (x >= 0.005) return "(above median)";
  return x > -0.005 ? "(median)" : "(below median)";
}

/** A run's energy record, unless it says nothing was measured (then its 0 is no value). */
function measuredEnergy(run) {
  return run.energy && run.energy.measured !== false ? run.energy : null;
}

function energyPart(energy) {
  if (!energy) return [h("h4", {}, "Energy"), h("p", { class: "muted" }, "not measured")];
  const d = energy.details || {};
  if (energy.measured === false) { // the monitor read nothing: its 0 kWh is no measurement
    return [h("h4", {}, "Energy"), h("p", { class: "muted energy-unmeasured" }, "not measured"),
      d.notes?.length ? h("ul", { class: "notes" }, d.notes.map((n) => h("li", {}, n))) : null];
  }
  const comps = Object.entries(d.components || {}).map(([c, v]) => [c,
    h("span", {}, num(v.kwh), ` kWh (${v.method || "?"})`)]);
  return [h("h4", {}, "Energy"), kv([
    ["Energy (kWh)", num(energy.energy_kwh, { class: "num energy-kwh" })],
    ["Emissions (kgCO2e)", num(energy.co2e_kg, { class: "num energy-co2" })],
    ["PUE", d.pue], ["Intensity (gCO2e/kWh)", d.intensity_g_per_kwh],
    ["Intensity source", d.intensity_source], ["Region", d.region],
    ["Measured at", energy.site], ...comps,
  ].filter(([, v]) => v !== undefined && v !== null)), d.notes?.length
    ? h("details", {}, h("summary", {}, `${d.notes.length} note(s)`), h("ul", {}, d.notes.map((n) => h("li", {}, n))))
    : null];
}

function metricsPart(metrics) {
  if (!metrics.length) return [h("h4", {}, "Metrics"), h("p", { class: "muted" }, "none")];
  const byName = new Map();
  for (const m of metrics) (byName.get(m.name) || byName.set(m.name, []).get(m.name)).push(m);
  return [h("h4", {}, "Metrics"), kv([...byName].map(([n, ms]) => {
    const scalar = ms.find((m) => m.step === null);
    const stepped = ms.filter((m) => m.step !== null);
    const last = stepped[stepped.length - 1];
    return [n, scalar ? num(scalar.value) : h("span", {}, num(last.value), ` (step ${last.step}, ${stepped.length} steps)`)];
  }), { class: "kv metrics" })];
}

/** Which orchestrator recorded an execution, from its adapter's property names. */
function orchestratorOf(e) {
  const keys = Object.keys(e.properties || {});
  if (keys.includes("airflow")) return "Airflow";
  if (keys.some((k) => k.startsWith("prefect."))) return "Prefect";
  if (keys.some((k) => k.startsWith("kfp."))) return "Kubeflow Pipelines";
  return "the orchestrator";
}

/** A small link to an execution's run in the orchestrator's UI (a new tab), named for screen
 *  readers by the run it opens; "–" when none was recorded (or it is no http(s) URL). */
function orchestratorCell(e) {
  const where = orchestratorOf(e);
  const link = e.run_url && webLink(e.run_url, `${where === "the orchestrator" ? "run" : where} ↗`);
  if (!link) return "–";
  const name = `Open ${e.stage} ${shortId(e.id)} in ${where}`;
  link.setAttribute("aria-label", visible(name));
  link.setAttribute("title", visible(`${name} (new tab)`));
  return link;
}

async function executionDetails(id, pick) {
  const [e, metrics] = await Promise.all([api(`executions/${enc(id)}`), all(`executions/${enc(id)}/metrics`)]);
  return [
    h("h3", {}, `${e.stage} `, status(e)),
    kv([["Execution", h("span", { class: "mono digest" }, e.id)], ["Pipeline", e.pipeline],
      ["Site", e.site], ["Started", `${time(e.started_at)} UTC`],
      ["Ended", e.ended_at ? `${time(e.ended_at)} UTC` : "–"],
      ["Duration", duration(e.ended_at ? e.ended_at - e.started_at : null)],
      ["Error", e.error || undefined],
      // the same run in the orchestrator's UI (its logs), when its adapter knew that UI's address
      ["Orchestrator", (e.run_url && webLink(e.run_url, `Open this run in ${orchestratorOf(e)}`)) || undefined]]),
    h("h4", {}, "Parameters"),
    Object.keys(e.params).length ? kv(entries(e.params).map(([k, v]) => [k, h("span", { class: "mono" }, text(v))]), { class: "kv params" })
      : h("p", { class: "muted" }, "none"),
    ...metricsPart(metrics),
    ...energyPart(e.energy),
    h("h4", {}, "Inputs"), linkList(e.inputs, artifactLabel, pick),
    h("h4", {}, "Outputs"), linkList(e.outputs, artifactLabel, pick),
    propsTable("Properties", e.properties), propsTable("Custom properties", e.custom_properties),
    h("p", { class: "actions" }, h("a", { href: new URL(`executions/${enc(id)}/events`, API).href,
      target: "_blank", rel: "noopener" }, "Raw OpenLineage events")),
  ];
}

const artifactLabel = (a) => `${a.name} (${isTaskValue(a) ? "task result" : a.type}, ${shortId(a.id)})`;

async function artifactDetails(id, pick) {
  const a = await api(`artifacts/${enc(id)}`);
  return [
    h("h3", {}, `${a.name} `, h("span", { class: "badge" }, a.type)),
    kv([["Digest", h("span", { class: "mono digest" }, a.id)], ["URI", h("span", { class: "mono" }, a.uri)],
      ["Role", isTaskValue(a) ? TASK_VALUE_TEXT : a.role], ["First seen at", a.site], ["Created", `${time(a.created_at)} UTC`]]),
    h("h4", {}, "Locations"),
    table(["Site", "URI"], a.locations.map((l) => h("tr", {}, h("td", {}, l.site), h("td", { class: "mono" }, l.uri))),
      { class: "grid compact" }),
    propsTable("Properties", a.properties), propsTable("Custom properties", a.custom_properties),
    h("h4", {}, "Produced by"), linkList(a.producers, (e) => `${e.stage} at ${e.site} (${shortId(e.id)})`, pick),
    h("h4", {}, "Read by"), linkList(a.consumers, (e) => `${e.stage} at ${e.site} (${shortId(e.id)})`, pick),
  ];
}

// #/compare?ids= --------------------------------------------------------------------------------
async function viewCompare(out, _args, query) {
  const ids = (query.get("ids") || "").split(",").map((x) => x.trim()).filter(Boolean);
  put(out, h("h1", {}, "Compare runs"));
  if (!ids.length) {
    put(out, h("p", { class: "empty" }, "Pick runs in the Executions table of a ",
      h("a", { href: "#/pipelines" }, "pipeline"), " and press Compare."));
    return;
  }
  // an id that is not in this store (or not an id) is named, and the other runs still compared
  const found = await Promise.all(ids.map((id) => api(`executions/${enc(id)}`).catch((e) => {
    if (e.status === 404 || e.status === 400) return { missing: id, why: e.message };
    throw e;
  })));
  const missing = found.filter((r) => r.missing);
  const runs = found.filter((r) => !r.missing);
  if (missing.length) {
    put(out, h("div", { class: "error", role: "alert", id: "compare-missing" },
      `Not compared: ${missing.map((m) => m.why).join("; ")}.`));
  }
  if (!runs.length) return;
  const metrics = await all("metrics", { execution_id: runs.map((r) => r.id) });
  const metricOf = new Map(runs.map((r) => [r.id, new Map()]));
  for (const m of metrics) {
    const mine = metricOf.get(m.execution_id);
    const prev = mine.get(m.name);
    // a scalar wins; else the latest step
    if (!prev || (prev.step !== null && (m.step === null || m.step > prev.step))) mine.set(m.name, m);
  }
  const union = (lists) => [...new Set(lists.flat())].sort(natural);
  const paramKeys = union(runs.map((r) => Object.keys(r.params)));
  const metricKeys = union(runs.map((r) => [...metricOf.get(r.id).keys()]));
  const row = (label, cells, cls = "") => {
    const texts = cells.map((c) => (c instanceof Node ? c.textContent : text(c)));
    const differs = new Set(texts).size > 1;
    return h("tr", { class: `${cls}${differs ? " differs" : ""}` }, h("th", { scope: "row" }, label),
      cells.map((c) => h("td", {}, c instanceof Node ? c : text(c))));
  };
  const group = (label) => h("tr", { class: "group" }, h("th", { colspan: runs.length + 1, scope: "colgroup" }, label));
  const body = [
    group("Run"),
    row("Pipeline", runs.map((r) => h("a", { href: pipelineHref(r.pipeline, `node=${r.id}`) }, r.pipeline))),
    row("Stage", runs.map((r) => r.stage)),
    row("Site", runs.map((r) => r.site)),
    row("Status", runs.map((r) => status(r))),
    row("Started (UTC)", runs.map((r) => time(r.started_at))),
    row("Duration", runs.map((r) => duration(r.ended_at ? r.ended_at - r.started_at : null))),
    runs.some((r) => r.error) ? row("Error", runs.map((r) => r.error || "–"), "error-row") : null,
    runs.some((r) => r.run_url && webLink(r.run_url)) ? row("Orchestrator", runs.map(orchestratorCell), "run-url") : null,
    group("Parameters"),
    ...paramKeys.map((k) => row(k, runs.map((r) => (k in r.params ? r.params[k] : "–")), "param")),
    group("Metrics"),
    ...metricKeys.map((k) => row(k, runs.map((r) => {
      const m = metricOf.get(r.id).get(k);
      return m ? num(m.value) : "–";
    }), "metric")),
    group("Energy"),
    row("Energy (kWh)", runs.map((r) => num(measuredEnergy(r)?.energy_kwh ?? null))),
    row("Emissions (kgCO2e)", runs.map((r) => num(measuredEnergy(r)?.co2e_kg ?? null))),
    row("PUE", runs.map((r) => r.energy?.details?.pue ?? "–")),
    row("Intensity (gCO2e/kWh)", runs.map((r) => r.energy?.details?.intensity_g_per_kwh ?? "–")),
  ];
  put(out, section(null, h("p", { class: "muted" }, "Rows whose values differ are marked."),
    h("div", { class: "scroll" }, h("table", { class: "grid compare", id: "compare-table" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", { scope: "col", dataset: { id: r.id } },
        `${r.stage} `, h("span", { class: "mono" }, shortId(r.id)))))),
      h("tbody", {}, body)))));
}

/** Keys of a tablist whose tabs are links (WAI-ARIA tabs with manual activation: choosing a tab
 *  asks the server and draws the view again, so the arrows only move the focus): Left/Right
 *  (round), Home and End move to another tab; Enter follows the link, Space does the same. */
function tabKeys(ev) {
  const tabs = [...ev.currentTarget.querySelectorAll('[role="tab"]')];
  const i = tabs.indexOf(ev.target);
  if (i < 0 || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  if (ev.key === " ") {
    ev.preventDefault(); // not a scroll of the page
    ev.target.click();
    return;
  }
  const n = tabs.length;
  const to = { ArrowRight: (i + 1) % n, ArrowLeft: (i - 1 + n) % n, Home: 0, End: n - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  tabs[to].focus();
}

// #/carbon --------------------------------------------------------------------------------------
const GROUPS = ["stage", "pipeline", "site", "phase", "day"];

function inputsText(inputs) {
  const parts = [];
  if (inputs.pue.length) parts.push(`PUE ${inputs.pue.join(", ")}`);
  if (inputs.intensity_g_per_kwh.length) parts.push(`${inputs.intensity_g_per_kwh.join(", ")} gCO2e/kWh`);
  return parts.join(" · ") || "–";
}

/** The end of the UTC day YYYY-MM-DD (the next midnight): "until" a date includes that day. */
function dayAfter(day) {
  const t = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(t) ? `${day}T00:00:00Z` : new Date(t + 86400000).toISOString().replace(".000Z", "Z");
}

async function viewCarbon(out, _args, query) {
  const by = GROUPS.includes(query.get("by")) ? query.get("by") : "stage";
  const filters = {
    pipeline: query.get("pipeline") || undefined, site: query.get("site") || undefined,
    since: query.get("since") ? `${query.get("since")}T00:00:00Z` : undefined,
    until: query.get("until") ? dayAfter(query.get("until")) : undefined,
  };
  // one pass over the store: the groups by day in the same response, the site list from its index
  const [result, pipelines] = await Promise.all([
    api("carbon", { ...filters, group_by: by, also: "day", store_sites: true }),
    all("pipelines"),
  ]);
  const days = result.also.day;
  const storeSites = result.store_sites;
  const colours = siteColours(storeSites);
  const link = (changes) => {
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v) q.set(k, v);
      else q.delete(k);
    }
    return `#/carbon?${q}`;
  };
  // named for screen readers: the first option ("all pipelines") is a value, not a label
  const select = (name, options, current) => h("select", { name, "aria-label": `${name[0].toUpperCase()}${name.slice(1)}`,
    onchange: (ev) => { location.hash = link({ [name]: ev.target.value }); } },
    h("option", { value: "" }, `all ${name}s`), options.map((o) => h("option", { value: o, selected: o === current }, o)));
  const date = (name) => h("input", { type: "date", name, value: query.get(name) || "",
    onchange: (ev) => { location.hash = link({ [name]: ev.target.value }); } });
  const t = result.total;
  const chartWidth = Math.max(480, Math.min(1200, view.clientWidth - 80));
  const methods = Object.entries(t.inputs.methods).map(([c, ms]) => `${c}: ${Object.entries(ms).map(([m, n]) => `${m} × ${n}`).join(", ")}`);
  // a WAI-ARIA tabs widget whose tabs are links (so each tab has its address): one Tab stop (the
  // chosen tab), the arrows, Home and End move along the tabs (tabKeys), Enter or Space choose
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Group emissions", onkeydown: tabKeys },
    GROUPS.map((grp) => h("a", {
      href: link({ by: grp }), role: "tab", id: `carbon-tab-${grp}`, class: grp === by ? "active" : "",
      "aria-selected": String(grp === by), tabindex: grp === by ? "0" : "-1",
      // only the chosen tab's panel exists: the others would name a panel that is not there
      "aria-controls": grp === by ? "carbon-tabpanel" : undefined,
    }, `by ${grp}`)));
  const barColour = (grp) => (by === "site" ? colours.get(grp.site) : by === "phase" ? PHASE_COLOURS[grp.phase] : "#0f766e");
  const groupRows = result.groups.map((grp) => h("tr", { dataset: { key: grp.key } },
    h("td", { class: "name" }, by === "pipeline" ? h("a", { href: pipelineHref(grp.pipeline) }, grp.key) : grp.key),
    h("td", { class: "n" }, String(grp.executions)), h("td", { class: "n" }, String(grp.with_energy)),
    h("td", { class: "n kwh" }, num(grp.energy_kwh)), h("td", { class: "n co2" }, num(grp.co2e_kg)),
    h("td", { class: "n" }, t.co2e_kg > 0 ? `${((100 * grp.co2e_kg) / t.co2e_kg).toFixed(1)}%` : "–"),
    h("td", {}, Object.entries(grp.phases).map(([p, sp]) => h("span", { class: "chip", style: `--c:${PHASE_COLOURS[p]}`, title: `${sp.executions} execution(s), ${sp.energy_kwh} kWh, ${sp.co2e_kg} kgCO2e` }, `${p} ${g(sp.co2e_kg)}`))),
    h("td", { class: "n pue" }, grp.inputs.pue.join(", ") || "–"),
    h("td", { class: "n intensity" }, grp.inputs.intensity_g_per_kwh.join(", ") || "–"),
    h("td", {}, [...grp.inputs.regions, ...grp.inputs.intensity_sources].join("; ") || "–")));
  put(out, h("h1", {}, "Carbon"),
    h("form", { class: "toolbar filters", onsubmit: (ev) => ev.preventDefault() },
      select("pipeline", pipelines.map((p) => p.name), query.get("pipeline")),
      select("site", storeSites, query.get("site")),
      h("label", {}, "from ", date("since")), h("label", {}, "until ", date("until")),
      h("a", { href: "#/carbon", class: "button" }, "Reset")),
    h("div", { class: "cards" },
      card("Energy", num(t.energy_kwh, { id: "carbon-kwh" }), "kWh (IT energy × PUE)"),
      card("Emissions", num(t.co2e_kg, { id: "carbon-co2" }), "kgCO2e"),
      card("Executions", `${t.with_energy} / ${t.executions}`, "with an energy record"),
      card("PUE", t.inputs.pue.join(", ") || "–", "power usage effectiveness"),
      card("Grid intensity", t.inputs.intensity_g_per_kwh.join(", ") || "–", "gCO2e/kWh")),
    section("Inputs behind the numbers", kv([
      ["PUE", t.inputs.pue.join(", ") || "–"],
      ["Grid intensity (gCO2e/kWh)", t.inputs.intensity_g_per_kwh.join(", ") || "–"],
      ["Intensity sources", t.inputs.intensity_sources.join("; ") || "–"],
      ["Regions", t.inputs.regions.join(", ") || "–"],
      ["Methods", methods.join(" · ") || "–"],
    ], { id: "carbon-inputs" })),
    section(`Emissions by ${by}`, tabs, h("div", { role: "tabpanel", id: "carbon-tabpanel",
      "aria-labelledby": `carbon-tab-${by}`, tabindex: "0" },
      result.groups.length ? hbars(result.groups.map((grp) => ({ label: grp.key, value: grp.co2e_kg, colour: barColour(grp),
        title: `${grp.key}: ${grp.co2e_kg} kgCO2e, ${grp.energy_kwh} kWh (${inputsText(grp.inputs)})` })), { unit: "kgCO2e", label: `Emissions by ${by}`, width: chartWidth })
        : h("p", { class: "empty" }, "No executions match."),
      table([by, ["Executions", "n"], ["With energy", "n"], ["kWh", "n"], ["kgCO2e", "n"], ["Share", "n"], "By phase (kgCO2e)", ["PUE", "n"], ["gCO2e/kWh", "n"], "Region / source"],
        groupRows, { id: "carbon-groups" }))),
    section("Over time (kgCO2e per UTC day)", days.groups.length ? vbars(days.groups.map((d) => ({ label: d.key, value: d.co2e_kg,
      title: `${d.key}: ${d.co2e_kg} kgCO2e, ${d.energy_kwh} kWh, ${d.executions} execution(s)` })), { unit: "kgCO2e", label: "Emissions per day", width: chartWidth })
      : h("p", { class: "empty" }, "No executions match.")),
    section("Phase of each stage", table(["Pipeline", "Stage", "Phase", "How", ["Executions", "n"]],
      result.stages.map((x) => h("tr", {}, h("td", {}, x.pipeline), h("td", {}, x.stage),
        h("td", {}, h("span", { class: "chip", style: `--c:${PHASE_COLOURS[x.phase]}` }, x.phase)),
        h("td", {}, x.source === "inferred" ? "inferred from the stage name" : `cmf.phase on the ${x.source}`),
        h("td", { class: "n" }, String(x.executions))))),
    result.notes.length ? h("ul", { class: "notes" }, result.notes.map((n) => h("li", {}, n))) : null));
}

// #/recommend -----------------------------------------------------------------------------------
async function viewRecommend(out, _args, query) {
  const tasks = await api("recommend/tasks");
  const taskId = query.get("task") || "";
  const k = Math.max(1, Math.min(50, Number(query.get("k")) || 5));
  const leaveOut = query.get("leave_out") !== "0";
  const picker = h("select", { name: "task", id: "task" }, h("option", { value: "" }, "choose a task…"),
    ["store", "both", "shipped"].map((src) => {
      const mine = tasks.items.filter((x) => x.source === src);
      return mine.length ? h("optgroup", { label: src === "shipped" ? "shipped knowledge base" : "recorded in this store" },
        mine.map((x) => h("option", { value: x.id, selected: x.id === taskId },
          `${x.name} (${x.category}, ${x.runs} runs)`))) : null;
    }));
  const kInput = h("input", { type: "number", name: "k", min: 1, max: 50, value: k });
  const leave = h("input", { type: "checkbox", name: "leave_out", checked: leaveOut });
  put(out, h("h1", {}, "Recommendations"),
    h("p", { class: "muted" }, `Seed configurations for a task, from the most similar of the ${tasks.knowledge_tasks} ` +
      "tasks in the knowledge base (the shipped one and the runs recorded in this store)."),
    h("form", { class: "toolbar", id: "recommend-form", onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams({ task: picker.value, k: kInput.value, leave_out: leave.checked ? "1" : "0" });
      location.hash = `#/recommend?${q}`;
    } }, h("label", {}, "Task ", picker), h("label", {}, "seeds ", kInput),
    h("label", { class: "check" }, leave, " leave the task's own runs out (as for a new task)"),
    h("button", { type: "submit" }, "Recommend")));
  if (!tasks.items.length) {
    put(out, h("p", { class: "empty" }, "The knowledge base is empty: record runs with a ",
      h("code", {}, "cmf.task"), " property and a ", h("code", {}, "score"), " metric (see docs/recommender.md)."));
    return;
  }
  if (!taskId) {
    put(out, section("Tasks in the knowledge base", table(["Task", "Category", "Modality", ["Runs", "n"], ["Best score", "n"], "Source"],
      tasks.items.map((x) => h("tr", { dataset: { task: x.id } },
        h("td", {}, h("a", { href: `#/recommend?${new URLSearchParams({ task: x.id, k, leave_out: leaveOut ? "1" : "0" })}` }, x.name)),
        h("td", {}, x.category), h("td", {}, x.modality), h("td", { class: "n" }, String(x.runs)),
        h("td", { class: "n" }, g(x.best_score)),
        h("td", {}, x.source === "shipped" ? "shipped" : x.source === "both" ? "this store + shipped" : "this store"))),
      { id: "tasks" })));
    return;
  }
  const local = new Set(tasks.items.filter((x) => x.source !== "shipped").map((x) => x.id));
  const rec = await api("recommend", { task: taskId, k, leave_out: leaveOut ? "true" : "false" });
  const taskInfo = tasks.items.find((x) => x.id === taskId);
  const mf = Object.entries(rec.task.meta_features);
  put(out, section(`For ${rec.task.name}`,
    h("p", { class: `message strategy-${rec.strategy}`, id: "rec-message" }, rec.message),
    kv([["Task", h("span", { class: "mono" }, rec.task.id)], ["Category", rec.task.category], ["Modality", rec.task.modality],
      ["Its runs", taskInfo ? String(taskInfo.runs) : "–"], ["Strategy", rec.strategy],
      ["Similarity", `${rec.metric}, threshold ${rec.threshold}`]]),
    mf.length ? h("details", {}, h("summary", {}, `${mf.length} meta-features`),
      kv(mf.map(([n, v]) => [n, g(v)]))) : null));
  const evidenceTasks = new Map();
  for (const n of rec.neighbours) evidenceTasks.set(n.task_id, { name: n.name, similarity: n.similarity });
  for (const seed of rec.seeds) for (const ev of seed.evidence) {
    if (!evidenceTasks.has(ev.task_id)) evidenceTasks.set(ev.task_id, { name: ev.task, similarity: ev.similarity });
  }
  const seedLabel = (seed) => Object.entries(seed.config).filter(([key]) => key !== "model").map(([key, v]) => `${key}=${text(v)}`).join(", ");
  // graph: task -> similar tasks -> seeds
  const host = h("div", { class: "graph-host rec-host", id: "rec-graph" });
  const gv = new GraphView(host, { label: "Similar tasks and seeds" });
  const nodes = [{ id: "q", kind: "task", lines: [rec.task.name, "the task", rec.task.category], w: 190, h: 58, cls: "query", colour: "#0f766e" },
    ...[...evidenceTasks].map(([id, t]) => ({ id: `t:${id}`, kind: "task", order: String(1 - t.similarity),
      lines: [t.name, `similarity ${t.similarity.toFixed(3)}`], w: 190, h: 44, cls: "task", colour: "#1f6fb4" })),
    ...rec.seeds.map((seed, i) => ({ id: `s:${i}`, kind: "seed", order: String(i).padStart(3, "0"),
      lines: [`${i + 1}. ${seed.config.model}`, seedLabel(seed), `${signed(seed.expected)} ${standing(seed.expected)}`], w: 210, h: 58, cls: "seed", colour: "#c2410c" }))];
  const edges = [...[...evidenceTasks.keys()].map((id) => ({ from: "q", to: `t:${id}` })),
    ...rec.seeds.flatMap((seed, i) => seed.evidence.map((ev) => ({ from: `t:${ev.task_id}`, to: `s:${i}` })))];
  put(out, section("Similar tasks", rec.neighbours.length ? table(["Task", ["Similarity", "n"], "Alike in", "Differs most in"],
    rec.neighbours.map((n) => h("tr", { dataset: { task: n.task_id } }, h("td", {}, n.name),
      h("td", { class: "n" }, h("span", { class: "meter", style: `--v:${n.similarity}` }), ` ${n.similarity.toFixed(3)}`),
      h("td", {}, n.alike.join(", ")), h("td", {}, n.differ.join(", ")))), { id: "neighbours" })
    : h("p", { class: "muted" }, "No task is similar enough; the seeds below do well across the category.")),
  section("Seeds and where they come from", host,
    h("p", { class: "muted", id: "score-scale" }, `Each seed is scored ${rec.score_scale} (past tasks: its weighted mean on the past tasks behind it; meta-model: predicted for this task).`),
    rec.seeds.length ? h("ol", { class: "seeds", id: "seeds" }, rec.seeds.map((seed) => h("li", {},
      h("div", {}, h("strong", {}, seed.config.model), ` ${seedLabel(seed)} `,
        h("span", { class: "muted score" }, `past tasks ${signed(seed.expected)} ${standing(seed.expected)}`
          + (seed.predicted === null || seed.predicted === undefined ? "" : `, meta-model ${signed(seed.predicted)} ${standing(seed.predicted)}`))),
      seed.reason ? h("div", { class: "muted why" }, `Why: ${seed.reason}`) : null,
      table(["From task", ["Similarity", "n"], ["Score there", "n"], ["Rank", "n"], "Run"], seed.evidence.map((ev) => h("tr", {},
        h("td", {}, ev.task), h("td", { class: "n" }, ev.similarity.toFixed(3)), h("td", { class: "n" }, g(ev.score)),
        h("td", { class: "n" }, `${ev.rank} of ${ev.n_runs}`),
        h("td", {}, !ev.run_id ? "–" : local.has(ev.task_id)
          ? h("a", { href: `#/compare?ids=${ev.run_id}`, class: "mono run", title: ev.run_id }, shortId(ev.run_id))
          : h("span", { class: "mono muted", title: `${ev.run_id} (shipped knowledge base)` }, shortId(ev.run_id))))),
      { class: "grid compact" }),
      h("details", {}, h("summary", {}, "Optuna parameters"), h("code", {}, JSON.stringify(seed.optuna_params)))))) : h("p", { class: "empty" }, "No seeds.")));
  requestAnimationFrame(() => {
    gv.setGraph(nodes, edges);
    gv.fit();
  });
}

window.addEventListener("hashchange", route);
serverInfo();
route();
