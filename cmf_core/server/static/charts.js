// Small SVG bar charts (no library): horizontal bars per group, vertical bars over time.

import { clip, g, s } from "./dom.js";

/**
 * Horizontal bars: rows [{label, value, colour, title}] -> <svg>. Scales to its container's
 * width; each bar is labelled with its .4g value and `unit`.
 */
export function hbars(rows, { unit = "", width = 760, label = "chart" } = {}) {
  const rowH = 26;
  const labelW = 220;
  const valueW = 140;
  const max = Math.max(0, ...rows.map((r) => r.value || 0));
  const barW = width - labelW - valueW;
  const height = Math.max(rowH, rows.length * rowH) + 4;
  return s("svg", { class: "chart hbars", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": label, preserveAspectRatio: "xMinYMin meet" },
  rows.map((r, i) => {
    const w = max > 0 ? Math.max(1, ((r.value || 0) / max) * barW) : 1;
    const y = i * rowH + 2;
    return s("g", { class: "bar-row" },
      s("title", {}, r.title || `${r.label}: ${r.value} ${unit}`),
      s("text", { class: "bar-label", x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end" },
        clip(r.label, 30)),
      s("rect", { x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 3,
        fill: r.colour || "#0f766e" }),
      s("text", { class: "bar-value", x: labelW + w + 6, y: y + rowH / 2 + 4 },
        `${g(r.value)} ${unit}`));
  }));
}

/**
 * Vertical bars over time: points [{label, value, title}] in order -> <svg>, with a value
 * axis (0 and the maximum) and a label under every bar (or every nth when crowded).
 */
export function vbars(points, { unit = "", width = 760, height = 220, label = "chart" } = {}) {
  const left = 70;
  const bottom = 34;
  const top = 18;
  const plotW = width - left - 10;
  const plotH = height - top - bottom;
  const max = Math.max(0, ...points.map((p) => p.value || 0));
  const step = points.length ? plotW / points.length : plotW;
  const barW = Math.max(2, Math.min(60, step * 0.7));
  const every = Math.max(1, Math.ceil(points.length / Math.floor(plotW / 80)));
  return s("svg", { class: "chart vbars", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": label },
  s("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 10, y2: top + plotH }),
  s("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }),
  s("text", { class: "axis-label", x: left - 6, y: top + 4, "text-anchor": "end" }, g(max)),
  s("text", { class: "axis-label", x: left - 6, y: top + plotH + 4, "text-anchor": "end" }, "0"),
  points.map((p, i) => {
    const hgt = max > 0 ? Math.max(1, ((p.value || 0) / max) * plotH) : 1;
    const x = left + i * step + (step - barW) / 2;
    return s("g", { class: "bar-col" },
      s("title", {}, p.title || `${p.label}: ${p.value} ${unit}`),
      s("rect", { x, y: top + plotH - hgt, width: barW, height: hgt, rx: 2, fill: "#0f766e" }),
      i % every === 0 ? s("text", { class: "axis-label", x: x + barW / 2, y: top + plotH + 16,
        "text-anchor": "middle" }, p.label) : null);
  }));
}
