// The events list: newest first, rows added in batches once per animation frame, at most
// MAX_ROWS kept, and a detail panel for the chosen event.

import { copyText, h, localTime, preview, visible } from "./dom.js";

export const MAX_ROWS = 500;
// Under a flood, the list is redrawn at most this often (each redraw moves and repaints every
// visible row; nobody reads faster than this), on an animation frame.
const MIN_FLUSH_MS = 100;

export class EventList {
  constructor(list, empty, detail, counters) {
    this.list = list;
    this.empty = empty;
    this.detail = detail;
    this.counters = counters;
    this.queue = [];
    this.scheduled = false;
    this.flushed = 0; // performance.now() of the last redraw
    this.autoscroll = true;
    this.until = null; // ms: events received later are not listed (a closed time range)
    this.events = new Map(); // seq -> event, for the rows on the page only
    list.addEventListener("click", (e) => {
      const item = e.target.closest("li[data-seq]");
      if (item) this.show(Number(item.dataset.seq));
    });
    list.addEventListener("keydown", (e) => {
      const item = e.target.closest("li[data-seq]");
      if (item && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.show(Number(item.dataset.seq));
      }
    });
  }

  clear() {
    this.queue = [];
    this.events.clear();
    this.list.replaceChildren();
    this.empty.hidden = false;
    this.counters.count.textContent = "0";
    this.counters.position.textContent = "–";
    this.close();
  }

  /** Events in any order of arrival; shown newest first on the next frame. */
  add(events) {
    for (const event of events) {
      if (this.until !== null && Date.parse(event.received_at) > this.until) continue;
      this.queue.push(event);
    }
    if (!this.scheduled && this.queue.length) {
      this.scheduled = true;
      const wait = this.flushed + MIN_FLUSH_MS - performance.now();
      if (wait > 0) setTimeout(() => requestAnimationFrame(() => this.flush()), wait);
      else requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.scheduled = false;
    this.flushed = performance.now();
    const batch = this.queue.splice(0).sort((a, b) => a.seq - b.seq).slice(-MAX_ROWS);
    if (!batch.length) return;
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      const event = batch[i];
      if (this.events.has(event.seq)) continue;
      this.events.set(event.seq, event);
      fragment.append(row(event));
    }
    const list = this.list;
    // Reading the layout costs a reflow per frame: only done when the reading position is held.
    const hold = !this.autoscroll && list.scrollTop > 0;
    const top = hold ? list.scrollTop : 0;
    const height = hold ? list.scrollHeight : 0;
    list.prepend(fragment);
    const added = hold ? list.scrollHeight - height : 0;
    let extra = list.childElementCount - MAX_ROWS;
    while (extra-- > 0) {
      const last = list.lastElementChild;
      this.events.delete(Number(last.dataset.seq));
      last.remove();
    }
    // Auto-scroll keeps the newest row in view; otherwise the rows being read stay put.
    if (hold) list.scrollTop = top + added;
    else if (this.autoscroll) list.scrollTop = 0;
    this.empty.hidden = list.childElementCount > 0;
    this.counters.count.textContent = String(list.childElementCount);
    this.counters.position.textContent = String(batch[batch.length - 1].seq);
  }

  show(seq) {
    const event = this.events.get(seq);
    if (!event) return;
    for (const el of this.list.querySelectorAll("li.selected")) el.classList.remove("selected");
    const chosen = this.list.querySelector(`li[data-seq="${seq}"]`);
    if (chosen) chosen.classList.add("selected");
    // Invisible and direction-changing characters shown as JSON escapes: the same value, readable.
    const json = visible(JSON.stringify(event, null, 2));
    const copy = h("button", { type: "button", "data-testid": "copy-event" }, "Copy JSON");
    copy.addEventListener("click", async () => {
      copy.textContent = (await copyText(json)) ? "Copied" : "Copy failed";
    });
    const close = h("button", { type: "button", class: "quiet" }, "Close");
    close.addEventListener("click", () => this.close());
    const fields = [
      ["seq", event.seq],
      ["id", event.id],
      ["type", event.type],
      ["source", event.source],
      ["subject", event.subject ?? "—"],
      ["received", `${localTime(event.received_at)} (${event.received_at})`],
      ["time", `${localTime(event.time)} (${event.time})`],
      ["trace id", event.trace_id],
      ["idempotency key", event.idempotency_key ?? "—"],
    ];
    this.detail.replaceChildren(
      h("div", { class: "detail-head" }, h("h2", null, "Event ", String(event.seq)), copy, close),
      h("dl", null, fields.map(([k, v]) => [h("dt", null, k), h("dd", { "data-field": k }, visible(v))])),
      h("pre", { class: "json", "data-testid": "event-json" }, json),
    );
    this.detail.hidden = false;
  }

  close() {
    this.detail.hidden = true;
    this.detail.replaceChildren();
  }
}

function row(event) {
  return h(
    "li",
    { dataset: { seq: String(event.seq) }, tabindex: "0" },
    h("time", { class: "c-time", datetime: event.received_at, title: event.received_at },
      shortTime(event.received_at)),
    h("span", { class: "c-type" }, visible(event.type)),
    h("span", { class: "c-source" }, visible(event.source)),
    h("span", { class: "c-subject" }, visible(event.subject ?? "")),
    h("code", { class: "c-data" }, preview(event.data)),
  );
}

/** The local time of day; with the month and day when it is not today. */
function shortTime(iso) {
  const full = localTime(iso);
  return full.slice(0, 10) === localTime(new Date().toISOString()).slice(0, 10) ? full.slice(11) : full.slice(5, 19);
}
