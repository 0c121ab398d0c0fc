// Layered graph layout and an SVG graph view with wheel zoom, drag pan and click to select.
//
// layout(): longest-path layering from the sources (left to right), sources pulled next to
// their first consumer, cycles broken at DFS back edges, and a few barycentre sweeps to order
// each layer so that edges cross less. Good for lineage graphs of up to a few thousand nodes.

import { clip, s, visible } from "./dom.js";

const key = (a, b) => `${a}\u0000${b}`;
/** What the keyboard reaches in a graph: its nodes and the edges that act when activated. */
const STOPS = 'g.node, path.edge-hit[role="button"]';

/**
 * Place nodes ({id, w, h, order}) joined by edges ({from, to}).
 * Returns {pos: Map(id -> {x, y, w, h, layer}), width, height}.
 */
export function layout(nodes, edges, { colGap = 80, rowGap = 18 } = {}) {
  const ids = nodes.map((n) => n.id);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const succ = new Map(ids.map((id) => [id, []]));
  const pred = new Map(ids.map((id) => [id, []]));
  const seen = new Set();
  for (const e of edges) {
    if (!byId.has(e.from) || !byId.has(e.to) || e.from === e.to) continue;
    if (seen.has(key(e.from, e.to))) continue;
    seen.add(key(e.from, e.to));
    succ.get(e.from).push(e.to);
    pred.get(e.to).push(e.from);
  }
  // break cycles: edges that close a cycle in an iterative DFS do not constrain the layers
  const back = new Set();
  const state = new Map();
  for (const root of ids) {
    if (state.has(root)) continue;
    state.set(root, 1);
    const stack = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const out = succ.get(top[0]);
      if (top[1] < out.length) {
        const w = out[top[1]++];
        if (state.get(w) === 1) back.add(key(top[0], w));
        else if (!state.has(w)) {
          state.set(w, 1);
          stack.push([w, 0]);
        }
      } else {
        state.set(top[0], 2);
        stack.pop();
      }
    }
  }
  const fsucc = new Map(ids.map((id) => [id, succ.get(id).filter((w) => !back.has(key(id, w)))]));
  const fpred = new Map(ids.map((id) => [id, pred.get(id).filter((u) => !back.has(key(u, id)))]));
  // longest path from the sources, in topological order (Kahn)
  const layer = new Map(ids.map((id) => [id, 0]));
  const indeg = new Map(ids.map((id) => [id, fpred.get(id).length]));
  const queue = ids.filter((id) => indeg.get(id) === 0);
  const topo = [];
  while (queue.length) {
    const v = queue.shift();
    topo.push(v);
    for (const w of fsucc.get(v)) {
      layer.set(w, Math.max(layer.get(w), layer.get(v) + 1));
      indeg.set(w, indeg.get(w) - 1);
      if (indeg.get(w) === 0) queue.push(w);
    }
  }
  // a source sits just before its earliest consumer, not in the first column
  for (const v of [...topo].reverse()) {
    if (fpred.get(v).length === 0 && fsucc.get(v).length) {
      layer.set(v, Math.min(...fsucc.get(v).map((w) => layer.get(w))) - 1);
    }
  }
  const depth = Math.max(0, ...layer.values()) + 1;
  const layers = Array.from({ length: depth }, () => []);
  for (const id of ids) layers[layer.get(id)].push(id);
  const cmp = (a, b) => String(byId.get(a).order ?? a).localeCompare(String(byId.get(b).order ?? b));
  layers.forEach((l) => l.sort(cmp));
  // barycentre sweeps, down then up
  const place = new Map();
  const index = () => layers.forEach((l) => l.forEach((id, i) => place.set(id, i / Math.max(1, l.length - 1))));
  index();
  const sweep = (order, neighbours) => {
    for (const li of order) {
      const bary = new Map();
      for (const id of layers[li]) {
        const ns = neighbours.get(id);
        bary.set(id, ns.length ? ns.reduce((a, n) => a + place.get(n), 0) / ns.length : place.get(id));
      }
      layers[li].sort((a, b) => bary.get(a) - bary.get(b) || cmp(a, b));
      layers[li].forEach((id, i) => place.set(id, i / Math.max(1, layers[li].length - 1)));
    }
  };
  const down = [...layers.keys()].slice(1);
  const up = [...layers.keys()].reverse().slice(1);
  for (let i = 0; i < 4; i++) {
    sweep(down, pred);
    sweep(up, succ);
  }
  // coordinates: columns as wide as their widest node, each column centred vertically
  const pos = new Map();
  const heights = layers.map((l) => l.reduce((a, id) => a + byId.get(id).h, 0) + rowGap * Math.max(0, l.length - 1));
  const height = Math.max(0, ...heights);
  let x = 0;
  layers.forEach((l, li) => {
    const w = Math.max(0, ...l.map((id) => byId.get(id).w));
    let y = (height - heights[li]) / 2;
    for (const id of l) {
      const n = byId.get(id);
      pos.set(id, { x: x + (w - n.w) / 2, y, w: n.w, h: n.h, layer: li });
      y += n.h + rowGap;
    }
    x += w + colGap;
  });
  return { pos, width: Math.max(0, x - colGap), height };
}

/** The path of an edge from the right side of a to the left side of b. */
export function edgePath(a, b) {
  const x1 = a.x + a.w;
  const y1 = a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}

/** Draw a node: a rounded box, a band in its colour, up to three lines of text. */
export function drawNode(n, p) {
  const lines = n.lines.slice(0, 3);
  return s("g", { class: `node ${n.cls || ""}`, transform: `translate(${p.x},${p.y})`,
    dataset: { id: n.id, kind: n.kind || "", label: lines[0] }, tabindex: -1, role: "button",
    "aria-label": n.title || lines[0] },
  s("title", {}, n.title || lines.join("\n")),
  s("rect", { class: "box", width: p.w, height: p.h, rx: n.rx ?? 6 }),
  s("rect", { class: "band", width: 6, height: p.h, rx: 3, fill: n.colour || "#64748b" }),
  lines.map((line, i) => s("text", { class: i === 0 ? "label" : "sub", x: 14,
    y: 17 + i * 15, dataset: { full: visible(line), room: p.w - 20 } }, clip(line, 80))));
}

/** Shorten (with an ellipsis) every text of `layer` wider than its node; the full text stays
 *  in the node's tooltip and data-label. Needs the SVG to be displayed. */
function fitTexts(layer) {
  for (const t of layer.querySelectorAll("text[data-room]")) {
    const room = Number(t.dataset.room);
    const full = t.dataset.full;
    if (t.getComputedTextLength() <= room) continue;
    let lo = 0;
    let hi = full.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      t.textContent = `${full.slice(0, mid)}…`;
      if (t.getComputedTextLength() <= room) lo = mid;
      else hi = mid - 1;
    }
    t.textContent = `${full.slice(0, lo)}…`;
  }
}

const MIN_ZOOM = 0.1;
const MAX_ZOOM = 4;

/**
 * An interactive graph in `host`: wheel zooms about the pointer, dragging the background pans,
 * clicking a node selects it (onSelect(id), or onSelect(null) on the background). Clicking an
 * edge calls onEdge(edge); when it returns true the click is the edge's (no node selected),
 * else it counts as a click on the background. An edge with a `label` (its accessible name)
 * is reached by keyboard too, after the node it starts from, and Enter or Space activates it.
 */
export class GraphView {
  constructor(host, { onSelect = () => {}, onEdge = () => false, label = "graph", spacing = {} } = {}) {
    this.onSelect = onSelect;
    this.onEdge = onEdge;
    this.spacing = spacing;
    this.k = 1;
    this.tx = 0;
    this.ty = 0;
    this.selected = null;
    // tabindex -1: a graph is one Tab stop, its node; without it Chromium also stops on the
    // <svg> itself (a clipped, scrollable box), a stop where no key does anything
    this.svg = s("svg", { class: "graph", role: "group", "aria-label": label, tabindex: -1 },
      s("defs", {}, ["plain", "accent"].map((kind) => s("marker", {
        id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse",
      }, s("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow-${kind}` })))));
    this.viewport = s("g", { class: "viewport" });
    this.edgeLayer = s("g", { class: "edges" });
    this.nodeLayer = s("g", { class: "nodes" });
    this.viewport.append(this.edgeLayer, this.nodeLayer);
    this.svg.append(this.viewport);
    host.append(this.svg);
    this.svg.addEventListener("wheel", (e) => this.#wheel(e), { passive: false });
    this.svg.addEventListener("pointerdown", (e) => this.#down(e));
    this.svg.addEventListener("pointermove", (e) => this.#move(e));
    this.svg.addEventListener("pointerup", (e) => this.#up(e));
    this.svg.addEventListener("keydown", (e) => {
      const node = e.target.closest?.(STOPS);
      if (!node) return;
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        if (node.matches("g.node")) this.select(node.dataset.id);
        else this.#activateEdge(node.dataset.edge);
        return;
      }
      // one Tab stop per graph (a graph of 1,000 nodes is not 1,000 Tabs): arrows move along it
      const all = this.#stops();
      const at = all.indexOf(node);
      const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1,
        Home: 0, End: all.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      this.#focus(all[Math.max(0, Math.min(all.length - 1, to))]);
    });
    this.svg.addEventListener("focusin", (e) => {
      const node = e.target.closest?.(STOPS);
      if (node) this.#rove(node);
    });
  }

  /** Draw nodes ({id, kind, lines, title, cls, colour, w, h, order}) and edges
   *  ({from, to, cls, title, label}; an edge with a title has it as its tooltip, over a wider
   *  invisible stroke that is easier to point at; one with a label is also a button for the
   *  keyboard, named by the label); keeps the selection if its node is still there. */
  setGraph(nodes, edges) {
    this.nodes = new Map(nodes.map((n) => [n.id, n]));
    this.edges = edges.filter((e) => this.nodes.has(e.from) && this.nodes.has(e.to));
    this.layout = layout(nodes, this.edges, this.spacing);
    this.edgeLayer.replaceChildren(...this.edges.flatMap((e, i) => {
      const d = edgePath(this.layout.pos.get(e.from), this.layout.pos.get(e.to));
      const path = s("path", {
        class: `edge ${e.cls || ""}`, d,
        "marker-end": `url(#arrow-${(e.cls || "").includes("cross-site") ? "accent" : "plain"})`,
        dataset: { from: e.from, to: e.to, edge: i },
      }, e.title ? s("title", {}, e.title) : null);
      const hit = e.label ? { tabindex: -1, role: "button", "aria-label": e.label } : {};
      return e.title ? [path, s("path", { class: "edge-hit", d, dataset: { edge: i }, ...hit },
        s("title", {}, e.title))] : [path];
    }));
    this.nodeLayer.replaceChildren(...nodes.map((n) => drawNode(n, this.layout.pos.get(n.id))));
    fitTexts(this.nodeLayer);
    if (this.selected && !this.nodes.has(this.selected)) this.selected = null;
    this.#mark();
  }

  /** Select a node (null: none) and tell onSelect. */
  select(id, { notify = true } = {}) {
    this.selected = id && this.nodes?.has(id) ? id : null;
    this.#mark();
    if (notify) this.onSelect(this.selected);
  }

  /** Dim every node not in `ids` (null: dim none). */
  highlight(ids) {
    for (const el of this.nodeLayer.querySelectorAll("g.node")) {
      el.classList.toggle("dim", Boolean(ids) && !ids.has(el.dataset.id));
    }
  }

  /** The nodes in drawing order, each followed by the labelled edges that start from it: the
   *  order the arrow keys move in. */
  #stops() {
    const from = new Map();
    for (const el of this.edgeLayer.querySelectorAll(STOPS)) {
      const edge = this.edges[Number(el.dataset.edge)];
      (from.get(edge.from) || from.set(edge.from, []).get(edge.from)).push(el);
    }
    return [...this.nodeLayer.querySelectorAll("g.node")].flatMap((n) => [n, ...(from.get(n.dataset.id) || [])]);
  }

  /** An edge's click, from the keyboard: onEdge(edge), and marked active when it took it. */
  #activateEdge(index) {
    const edge = this.edges[Number(index)];
    if (!edge || !this.onEdge(edge)) return;
    this.select(null, { notify: false });
    this.edgeLayer.querySelector(`path.edge[data-edge="${index}"]`)?.classList.add("active");
  }

  /** Make `node` (a node or a labelled edge) the graph's one Tab stop (the others are reached
   *  with the arrow keys). */
  #rove(node) {
    for (const el of this.viewport.querySelectorAll('[tabindex="0"]')) {
      if (el !== node) el.setAttribute("tabindex", "-1");
    }
    node?.setAttribute("tabindex", "0");
  }

  #focus(node) {
    this.#rove(node);
    node.focus();
  }

  #mark() {
    for (const el of this.nodeLayer.querySelectorAll("g.node")) {
      el.classList.toggle("selected", el.dataset.id === this.selected);
    }
    const stop = [...this.nodeLayer.querySelectorAll("g.node")].find((el) => el.dataset.id === this.selected)
      || this.viewport.querySelector('[tabindex="0"]') || this.nodeLayer.querySelector("g.node");
    this.#rove(stop);
    for (const el of this.edgeLayer.querySelectorAll("path.edge")) {
      el.classList.toggle("active", Boolean(this.selected) &&
        (el.dataset.from === this.selected || el.dataset.to === this.selected));
    }
  }

  #apply() {
    this.viewport.setAttribute("transform", `translate(${this.tx},${this.ty}) scale(${this.k})`);
  }

  /** Zoom so that the whole graph fits the view (never above 1.25x). */
  fit() {
    const w = this.svg.clientWidth || 800;
    const hgt = this.svg.clientHeight || 500;
    const margin = 24;
    const gw = Math.max(1, this.layout?.width || 1);
    const gh = Math.max(1, this.layout?.height || 1);
    this.k = Math.max(MIN_ZOOM, Math.min(1.25, (w - 2 * margin) / gw, (hgt - 2 * margin) / gh));
    this.tx = (w - gw * this.k) / 2;
    this.ty = (hgt - gh * this.k) / 2;
    this.#apply();
  }

  /** Zoom by factor f about the point (x, y) of the view (default: its centre). */
  zoomBy(f, x = this.svg.clientWidth / 2, y = this.svg.clientHeight / 2) {
    const k = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, this.k * f));
    this.tx = x - ((x - this.tx) * k) / this.k;
    this.ty = y - ((y - this.ty) * k) / this.k;
    this.k = k;
    this.#apply();
  }

  /** Pan (not zoom) so that node `id` is in view, `right` pixels clear of the right edge. */
  reveal(id, right = 0) {
    const p = this.layout?.pos.get(id);
    if (!p) return;
    const pad = 16;
    const maxX = this.svg.clientWidth - right - pad;
    const maxY = this.svg.clientHeight - pad;
    const x1 = this.tx + p.x * this.k;
    const x2 = this.tx + (p.x + p.w) * this.k;
    const y1 = this.ty + p.y * this.k;
    const y2 = this.ty + (p.y + p.h) * this.k;
    if (x2 > maxX) this.tx -= Math.min(x2 - maxX, x1 - pad);
    else if (x1 < pad) this.tx += pad - x1;
    if (y2 > maxY) this.ty -= Math.min(y2 - maxY, y1 - pad);
    else if (y1 < pad) this.ty += pad - y1;
    this.#apply();
  }

  get scale() {
    return this.k;
  }

  #point(e) {
    const r = this.svg.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  #wheel(e) {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    this.zoomBy(Math.exp(-e.deltaY * unit * 0.0015), ...this.#point(e));
  }

  #down(e) {
    if (e.button !== 0) return;
    this.drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false,
      node: e.target.closest("g.node")?.dataset.id ?? null,
      edge: e.target.closest("[data-edge]")?.dataset.edge ?? null };
    this.svg.setPointerCapture?.(e.pointerId);
  }

  #move(e) {
    if (!this.drag) return;
    const dx = e.clientX - this.drag.x;
    const dy = e.clientY - this.drag.y;
    if (!this.drag.moved && Math.hypot(dx, dy) < 4) return;
    this.drag.moved = true;
    this.svg.classList.add("panning");
    this.tx = this.drag.tx + dx;
    this.ty = this.drag.ty + dy;
    this.#apply();
  }

  #up(e) {
    const drag = this.drag;
    this.drag = null;
    this.svg.classList.remove("panning");
    this.svg.releasePointerCapture?.(e.pointerId);
    if (!drag || drag.moved) return;
    const edge = drag.node === null && drag.edge !== null ? this.edges[Number(drag.edge)] : null;
    if (edge && this.onEdge(edge)) {
      this.select(null, { notify: false });
      this.edgeLayer.querySelector(`path.edge[data-edge="${drag.edge}"]`)?.classList.add("active");
    } else {
      this.select(drag.node);
    }
  }
}
