// Small DOM helpers. Every string goes into the page as text, never as HTML.

/** Build an element: h("td", {class: "x", onclick: fn}, "text", child). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// Bidirectional overrides and other invisible controls would reorder or hide what follows
// them; in one-line previews they are shown as escapes instead.
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

export function visible(text) {
  return String(text).replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** The first ``max`` characters of a value's JSON, on one line. */
export function preview(value, max = 160) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value);
  return visible(text.length > max ? text.slice(0, max) + "…" : text);
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** 2026-11-23 11:00:00.012 in the browser's zone. */
export function localTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The value a datetime-local input shows for an ISO time, in the browser's zone. */
export function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return localTime(d.toISOString()).replace(" ", "T").slice(0, 19);
}

/** ISO UTC for a datetime-local input's value (local time), or "" when empty or invalid. */
export function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** Minutes east of UTC now, as the counts API takes it. */
export function utcOffsetMinutes() {
  return -new Date().getTimezoneOffset();
}

/** "UTC+01:00 (Europe/Berlin)" */
export function zoneLabel() {
  const minutes = utcOffsetMinutes();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}` + (name ? ` (${name})` : "");
}

/** Copy text to the clipboard; falls back to a selected textarea where the API is missing. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h("textarea", { class: "offscreen" }, text);
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}
