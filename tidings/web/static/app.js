// The live events page: one EventSource on /v1/events/stream with the chosen filters.
// EventSource reconnects by itself and sends Last-Event-ID, so no event is missed or repeated.
"use strict";

const MAX_ROWS = 500; // rows kept on the page; older ones are dropped
const $ = (id) => document.getElementById(id);
const rows = $("events").tBodies[0];
let source = null;
let paused = false;
let held = []; // events received while paused
let count = 0;

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + kind;
}

function notice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

function streamUrl() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const key of ["type", "source", "subject"]) {
    const value = String(form.get(key) || "").trim();
    if (value) params.set(key, value);
  }
  return { params, history: form.get("from") === "history" };
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function show(event) {
  const tr = document.createElement("tr");
  tr.className = "new";
  tr.dataset.seq = event.seq;
  const data = cell(JSON.stringify(event.data), "data");
  data.title = "click to expand";
  data.addEventListener("click", () => data.classList.toggle("open"));
  tr.append(cell(String(event.seq)), cell(event.received_at.replace("T", " ").replace("Z", "")),
            cell(event.type), cell(event.source), cell(event.subject || ""), data);
  rows.prepend(tr);
  while (rows.rows.length > MAX_ROWS) rows.deleteRow(rows.rows.length - 1);
  $("empty").hidden = true;
}

function receive(event) {
  count += 1;
  $("count").textContent = String(count);
  $("position").textContent = String(event.seq);
  if (paused) held.push(event); else show(event);
}

async function connect() {
  if (source) source.close();
  notice("");
  const { params, history } = streamUrl();
  if (history) {
    // Start 100 matching events back: ask history for the 100th newest position.
    const query = new URLSearchParams(params);
    query.set("limit", "100");
    try {
      const page = await (await fetch("/v1/events?" + query)).json();
      const oldest = page.events.length ? page.events[page.events.length - 1].seq - 1 : 0;
      params.set("last_event_id", String(Math.max(0, oldest)));
    } catch (err) {
      notice("could not read history: " + err);
    }
  }
  setStatus("connecting", "connecting");
  source = new EventSource("/v1/events/stream?" + params);
  source.addEventListener("connected", (m) => {
    const hello = JSON.parse(m.data);
    $("position").textContent = String(hello.position);
    setStatus(paused ? "paused" : "live", paused ? "paused" : "live");
  });
  source.addEventListener("event", (m) => receive(JSON.parse(m.data)));
  source.addEventListener("heartbeat", (m) => {
    const beat = JSON.parse(m.data);
    if (beat.position !== null) $("position").textContent = String(beat.position);
  });
  source.addEventListener("system", (m) => {
    const info = JSON.parse(m.data);
    notice(info.code + (info.message ? ": " + info.message : ""));
  });
  source.addEventListener("shutdown", () => {
    setStatus("server restarting", "connecting");
  });
  source.onerror = () => {
    setStatus(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting", "down");
  };
  source.onopen = () => setStatus(paused ? "paused" : "live", paused ? "paused" : "live");
  // A bad filter answers 400 before the stream starts; EventSource hides the body, so ask.
  fetch("/v1/events?limit=1&" + streamUrl().params).then(async (r) => {
    if (!r.ok) {
      const body = await r.json();
      notice(body.error.message);
      setStatus("invalid filter", "down");
      source.close();
    }
  }).catch(() => {});
}

$("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  rows.replaceChildren();
  count = 0;
  $("count").textContent = "0";
  $("empty").hidden = false;
  connect();
});

$("pause").addEventListener("click", () => {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(paused));
  if (!paused) {
    held.forEach(show);
    held = [];
  }
  setStatus(paused ? "paused" : "live", paused ? "paused" : "live");
});

$("clear").addEventListener("click", () => {
  rows.replaceChildren();
  $("empty").hidden = false;
});

connect();
