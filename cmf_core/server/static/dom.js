// DOM and formatting helpers shared by the views. No dependencies, no build step.

const SVG_NS = "http://www.w3.org/2000/svg";

// Characters that show nothing, or turn the text around them: a recorded name holding one
// would look like another ("churn" and "churn" + U+200B) or reverse what follows it on the
// line ("evil" + U+202E + "gnp.exe" reads "evilexe.png"). Always: soft hyphen, the bidi marks,
// embeddings, overrides and isolates, zero-width space and no-break space (BOM), word joiner
// and invisible operators, fillers. Joiners (ZWNJ, ZWJ) and variation selectors only where
// they join nothing: next to ASCII or at an end (they shape emoji, Persian and Indic text).
const INVISIBLE = new RegExp("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f" +
  "\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0]" +
  "|(?<=^|[\x00-\x7f])[\u200c\u200d\ufe00-\ufe0f]|[\u200c\u200d](?=$|[\x00-\x7f])" +
  "|(?<=^|[\x00-\x7f])[\u{e0000}-\u{e007f}]", "gu");

/** Text as it is shown: each invisible or direction-changing character (above) written out as
 *  ⟨U+202E⟩, so that recorded text is shown as it is and cannot pass for other text. */
export function visible(value) {
  return String(value).replace(INVISIBLE, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

/** Attributes read out or shown as text (tooltips, names for screen readers); others (href,
 *  value, data-*) keep the recorded value, which the page looks records up by. */
const SHOWN = new Set(["title", "aria-label", "label", "alt", "placeholder"]);

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    // through the CSSOM: the server's Content-Security-Policy refuses inline style attributes
    else if (key === "style") el.style.cssText = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (SHOWN.has(key)) el.setAttribute(key, visible(value));
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : visible(child));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/x", class: "c"}, "text", child). Text is never parsed;
 *  text and the attributes shown as text go through visible(). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as h(). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/**
 * A number as Python's format(x, ".4g") writes it (what `cmf carbon` prints), so the page and
 * the CLI show the same digits: 0.0001234 -> "0.0001234", 2.383e-7 -> "2.383e-07", 1234.5 ->
 * "1234" (an exact tie rounds to even, as Python does; JavaScript would round it up).
 */
export function g(x, precision = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const sign = x < 0 ? "-" : "";
  const abs = Math.abs(x);
  let [mantissa, expText] = abs.toExponential(precision - 1).split("e");
  let digits = mantissa.replace(".", "");
  // toExponential rounds a tie up; Python rounds it to the even digit
  const [exact, exactExp] = abs.toExponential(99).split("e");
  const all = exact.replace(".", "");
  if (all[precision] === "5" && /^0*$/.test(all.slice(precision + 1))
      && Number(all[precision - 1]) % 2 === 0) {
    digits = all.slice(0, precision);
    expText = exactExp;
  }
  const exp = Number(expText);
  if (exp < -4 || exp >= precision) {
    const frac = digits.slice(1).replace(/0+$/, "");
    const pow = `e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    return `${sign}${digits[0]}${frac ? `.${frac}` : ""}${pow}`;
  }
  const whole = exp >= 0 ? digits.slice(0, exp + 1) : "0";
  const frac = (exp >= 0 ? digits.slice(exp + 1) : "0".repeat(-exp - 1) + digits).replace(/0+$/, "");
  return `${sign}${whole}${frac ? `.${frac}` : ""}`;
}

/** A number cell: the .4g text, the exact value in data-value and in the tooltip. */
export function num(x, attrs = {}) {
  const exact = x === null || x === undefined ? "" : String(x);
  return h("span", { class: "num", title: exact, dataset: { value: exact }, ...attrs }, g(x));
}

/** A parameter or property value as text (objects as compact JSON). */
export function text(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Unix seconds -> "2026-11-27 02:35:10" (UTC). */
export function time(unix) {
  if (unix === null || unix === undefined) return "–";
  const d = new Date(unix * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** Seconds -> "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 59.95) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);  // rounded once, so 119.7 s is "2 min 00 s", not "1 min 60 s"
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${pad(whole % 60)} s`;
  return `${Math.floor(whole / 3600)} h ${pad(Math.floor((whole % 3600) / 60))} min`;
}

/**
 * A short form of an id: a digest's scheme and first 8 hex digits ("sha256:16320c9c"); the last
 * 8 digits of a UUID ("…0924a9b3"), since UUIDv7s of runs started together share their first
 * digits (a timestamp).
 */
export function shortId(id) {
  if (!id) return "";
  const colon = id.indexOf(":");
  if (colon > 0) return `${id.slice(0, colon)}:${id.slice(colon + 1, colon + 9)}`;
  return /^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(id) ? `…${id.slice(-8)}` : id.slice(0, 12);
}

/** At most n characters, with an ellipsis. */
export function clip(value, n) {
  const t = String(value ?? "");
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

export const SITE_COLOURS = ["#1f6fb4", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
  "#a16207", "#be185d"];

/** site -> colour, by the site's place in the sorted list of sites. */
export function siteColours(sites) {
  const out = new Map();
  [...new Set(sites)].sort().forEach((site, i) => out.set(site, SITE_COLOURS[i % SITE_COLOURS.length]));
  return out;
}

/**
 * A status badge: status("completed"), or an execution record for its status, shown as
 * "running (lost)" when the server judged it lost (`lost`: its process on the server's host has
 * ended without reporting an end), with the process and what to do in the tooltip.
 */
export function status(value) {
  if (value && typeof value === "object") {
    if (!value.lost) return status(value.status);
    return h("span", { class: "badge status-lost", title: lostReason(value) }, `${value.status} (lost)`);
  }
  return h("span", { class: `badge status-${value || "unknown"}` }, value || "unknown");
}

/** Why an execution the server judged lost is lost, and what marks it failed. */
export function lostReason(e) {
  const p = e.properties?.["cmf.process"] || {};
  return `Lost: the process on host ${p.host ?? "?"} (pid ${p.pid ?? "?"}) that ran it is gone ` +
    "and never reported an end (killed, e.g. out of memory?). `cmf reap` on that host marks it failed.";
}

/** An http(s) URL as a link opening in a new tab; any other value (javascript:, data:, relative)
 * is no link: null. */
export function webLink(url, label) {
  let parsed;
  try { parsed = new URL(String(url)); } catch { return null; }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || !parsed.host) return null;
  return h("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer" }, label ?? parsed.href);
}

/** An execution's status as text: "running (lost)" for a lost one. */
export function statusText(e) {
  return e.lost ? `${e.status} (lost)` : e.status;
}

/** A key/value table from [key, value] pairs (values may be nodes). */
export function kv(pairs, attrs = {}) {
  const rows = pairs.filter(([, v]) => v !== undefined).map(([k, v]) =>
    h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v instanceof Node ? v : text(v))));
  return rows.length ? h("table", { class: "kv", ...attrs }, h("tbody", {}, rows)) : null;
}
