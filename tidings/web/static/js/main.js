// The console: wires the filter form (kept in the URL), the live stream, the views and the
// key prompt together.

import { api, key, onUnauthorized, tokenUrl } from "./api.js";
import { ChartsView } from "./charts.js";
import { DeadLettersView } from "./deadletters.js";
import { fromLocalInput, toLocalInput, zoneLabel } from "./dom.js";
import { EventList } from "./events.js";
import { backoff, Stream } from "./stream.js";
import { WebhooksView } from "./webhooks.js";

const $ = (selector) => document.querySelector(selector);
const VIEWS = ["events", "charts", "webhooks", "dead-letters"];
const FILTERS = ["type", "source", "subject"];
const RANGES = { "15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000 };
const HISTORY = 100;

const form = $("#filters");
const statusEl = $("#status");
const noticeEl = $("#notice");
const dialog = $("#key-dialog");
const list = new EventList($("#events"), $("#empty"), $("#detail"), { count: $("#count"), position: $("#position") });
const charts = new ChartsView($("#view-charts"), showError);
const webhooks = new WebhooksView($("#view-webhooks"), showError);
const deadLetters = new DeadLettersView($("#view-dead-letters"), showError);
let stream = null;
let view = "events";
let applied = 0; // which apply() is current; older ones stop when they see a newer one

for (const el of [$("#zone"), ...document.querySelectorAll(".zone-name")]) el.textContent = zoneLabel();

// -- state <-> URL <-> form -------------------------------------------------------------------

function stateFromUrl() {
  const params = new URLSearchParams(location.search);
  const state = { view: VIEWS.includes(params.get("view")) ? params.get("view") : "events" };
  for (const name of [...FILTERS, "range", "since", "until"]) state[name] = params.get(name) || "";
  if (!state.range && (state.since || state.until)) state.range = "custom";
  return state;
}

function stateFromForm() {
  const data = new FormData(form);
  const state = { view };
  for (const name of FILTERS) state[name] = String(data.get(name) || "").trim();
  state.range = String(data.get("range") || "");
  state.since = state.range === "custom" ? fromLocalInput(String(data.get("since") || "")) || form.dataset.rawSince || "" : "";
  state.until = state.range === "custom" ? fromLocalInput(String(data.get("until") || "")) || form.dataset.rawUntil || "" : "";
  return state;
}

function fillForm(state) {
  for (const name of FILTERS) form.elements[name].value = state[name];
  form.elements.range.value = state.range in RANGES || state.range === "custom" ? state.range : "";
  form.elements.since.value = toLocalInput(state.since);
  form.elements.until.value = toLocalInput(state.until);
  // A value a datetime input cannot show (a typo in a shared URL) is still sent, so the
  // server's error can be shown next to the field.
  form.dataset.rawSince = form.elements.since.value ? "" : state.since;
  form.dataset.rawUntil = form.elements.until.value ? "" : state.until;
}

function urlFor(state) {
  const params = new URLSearchParams();
  if (state.view !== "events") params.set("view", state.view);
  for (const name of FILTERS) if (state[name]) params.set(name, state[name]);
  if (state.range) params.set("range", state.range);
  if (state.range === "custom") {
    if (state.since) params.set("since", state.since);
    if (state.until) params.set("until", state.until);
  }
  const text = params.toString();
  return location.pathname + (text ? "?" + text : "");
}

/** The filter parameters (type, source, subject) of a state. */
function filterOf(state) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (state[name]) params.set(name, state[name]);
  return params;
}

/** since/until of a state as ISO strings, presets worked out from now. */
function boundsOf(state) {
  if (state.range in RANGES) return { since: new Date(Date.now() - RANGES[state.range]).toISOString(), until: "" };
  if (state.range === "custom") return { since: state.since, until: state.until };
  return { since: "", until: "" };
}

// -- status, notices, errors ------------------------------------------------------------------

function setStatus(text) {
  statusEl.textContent = text;
  statusEl.className = "status " + text;
}

function notice(text) {
  noticeEl.textContent = text;
  noticeEl.hidden = !text;
}

function clearFieldErrors() {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showError(error) {
  if (error.status === 401) return; // the key prompt is open
  const field = error.field && form.querySelector(`[data-error-for="${CSS.escape(error.field)}"]`);
  if (field) {
    field.textContent = error.message;
    form.elements[error.field].setAttribute("aria-invalid", "true");
  } else {
    notice(error.status === 0 ? "The server cannot be reached." : `${error.code}: ${error.message}`);
  }
}

// -- the live list ----------------------------------------------------------------------------

async function apply(state, { push = false, failures = 0 } = {}) {
  const current = ++applied;
  if (push) history.pushState(null, "", urlFor(state));
  else history.replaceState(null, "", urlFor(state));
  clearFieldErrors();
  notice("");
  if (stream) stream.stop();
  stream = null;
  list.clear();
  const filter = filterOf(state);
  const { since, until } = boundsOf(state);
  updateExports(state);
  charts.setFilter(filter);
  list.since = since ? Date.parse(since) : null;
  list.until = until ? Date.parse(until) : null;

  const query = new URLSearchParams(filter);
  if (since) query.set("since", since);
  if (until) query.set("until", until);
  query.set("limit", String(HISTORY));
  const asked = Date.now();
  let page;
  try {
    page = await api("/v1/events", { query });
  } catch (error) {
    if (current !== applied) return;
    showError(error);
    if (error.status === 0) {
      // The server is down: say so, and try again later, waiting longer each time.
      setStatus("offline");
      setTimeout(() => current === applied && apply(state, { failures: failures + 1 }), backoff(failures + 1));
    }
    return;
  }
  if (current !== applied) return;
  if (failures) notice("");
  list.add(page.events);
  // Resume after the newest listed event; with none listed, from a moment before the history
  // was read (so nothing published meanwhile is missed).
  const streamFilter = new URLSearchParams(filter);
  let after = null;
  if (page.events.length) after = page.events[0].seq;
  else streamFilter.set("since", since && Date.parse(since) > asked - 5000 ? since : new Date(asked - 5000).toISOString());
  stream = new Stream(streamFilter, after, {
    event: (event) => {
      if (list.since !== null && Date.parse(event.received_at) < list.since) return;
      list.add([event]);
      charts.add(event);
    },
    status: setStatus,
    notice: (info) => notice(info.code + (info.message ? ": " + info.message : "")),
    refused: showError,
  });
  stream.start();
}

function updateExports(state) {
  for (const format of ["csv", "ndjson"]) {
    const link = document.querySelector(`[data-testid=export-${format}]`);
    link.onclick = () => {
      // Presets are relative: work out the window at the moment of the download.
      const { since, until } = boundsOf(state);
      const query = filterOf(state);
      query.set("format", format);
      if (since) query.set("since", since);
      if (until) query.set("until", until);
      link.href = tokenUrl("/v1/events/export", query);
    };
    link.onclick();
  }
}

// -- views ------------------------------------------------------------------------------------

function showView(name) {
  view = name;
  for (const candidate of VIEWS) $(`#view-${candidate}`).hidden = candidate !== name;
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  form.hidden = name === "webhooks" || name === "dead-letters";
  charts.show(name === "charts");
  if (name === "webhooks") webhooks.load();
  if (name === "dead-letters") deadLetters.load();
}

for (const tab of document.querySelectorAll(".tabs a")) {
  tab.addEventListener("click", (e) => {
    e.preventDefault();
    showView(tab.dataset.view);
    history.pushState(null, "", urlFor({ ...stateFromForm(), view }));
  });
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  apply(stateFromForm(), { push: true });
});

form.elements.range.addEventListener("change", () => {
  if (form.elements.range.value !== "custom") {
    form.elements.since.value = "";
    form.elements.until.value = "";
  }
});

for (const name of ["since", "until"]) {
  form.elements[name].addEventListener("input", () => {
    form.elements.range.value = "custom";
    delete form.dataset[name === "since" ? "rawSince" : "rawUntil"];
  });
}

form.elements.autoscroll.addEventListener("change", () => {
  list.autoscroll = form.elements.autoscroll.checked;
  if (list.autoscroll) list.list.scrollTop = 0;
});

window.addEventListener("popstate", () => {
  const state = stateFromUrl();
  fillForm(state);
  showView(state.view);
  apply(state);
});

// -- the key prompt ---------------------------------------------------------------------------

onUnauthorized(() => {
  $("#key-button").hidden = false;
  $("#key-error").textContent = key.get() ? "The server refused this key." : "";
  if (!dialog.open) dialog.showModal();
});

$("#key-form").addEventListener("submit", () => {
  const value = String(new FormData($("#key-form")).get("key") || "").trim();
  if (!value) return;
  key.set(value);
  $("#key-form").reset();
  $("#key-button").hidden = false;
  reloadAll();
});

$("#key-forget").addEventListener("click", () => {
  key.clear();
  dialog.close();
  reloadAll();
});

$("#key-button").addEventListener("click", () => dialog.showModal());

function reloadAll() {
  const state = { ...stateFromForm(), view };
  showView(view);
  apply(state);
}

// -- start ------------------------------------------------------------------------------------

const initial = stateFromUrl();
if (key.get()) $("#key-button").hidden = false;
fillForm(initial);
showView(initial.view);
apply(initial);
window.tidings = { list, charts, webhooks, deadLetters, get stream() { return stream; } };
