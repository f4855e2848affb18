// One live subscription: an EventSource that resumes after its last position.
//
// EventSource would reconnect by itself, but it cannot report why a connection failed, it
// gives up after an HTTP error, and it retries at a fixed pace. So every failure closes it;
// the server's health decides between "reconnecting" and "offline", and the next attempt waits
// with exponential backoff and jitter, resuming with last_event_id (Last-Event-ID) so no
// event is missed or repeated.

import { api, tokenUrl } from "./api.js";

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export function backoff(failures, random = Math.random) {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random() / 2));
}

export class Stream {
  /**
   * @param {URLSearchParams} filter  the stream's filter parameters
   * @param {number|null} after       resume after this seq (null: from the head)
   * @param {{event, status, notice, refused}} on  callbacks
   */
  constructor(filter, after, on) {
    this.filter = filter;
    this.position = after;
    this.on = on;
    this.source = null;
    this.failures = 0;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  open() {
    if (this.stopped) return;
    const query = new URLSearchParams(this.filter);
    if (this.position !== null) query.set("last_event_id", String(this.position));
    const source = new EventSource(tokenUrl("/v1/events/stream", query));
    this.source = source;
    source.addEventListener("connected", (message) => {
      const hello = JSON.parse(message.data);
      if (this.position === null) this.position = hello.position;
      this.failures = 0;
      this.on.status("live");
    });
    source.addEventListener("event", (message) => {
      const event = JSON.parse(message.data);
      if (this.position !== null && event.seq <= this.position) return; // already shown
      this.position = event.seq;
      this.on.event(event);
    });
    source.addEventListener("heartbeat", (message) => {
      const beat = JSON.parse(message.data);
      // At the head, every matching event up to here has been sent: resume from here.
      if (beat.position !== null && beat.position > (this.position ?? 0)) this.position = beat.position;
    });
    source.addEventListener("system", (message) => this.on.notice(JSON.parse(message.data)));
    source.addEventListener("shutdown", () => this.on.status("reconnecting"));
    source.onerror = () => {
      source.close();
      if (this.source !== source || this.stopped) return;
      this.source = null;
      this.failed();
    };
  }

  async failed() {
    this.failures += 1;
    this.on.status("reconnecting");
    let reachable = true;
    try {
      const health = await fetch("/healthz", { cache: "no-store" });
      reachable = health.ok;
    } catch {
      reachable = false;
    }
    if (this.stopped) return;
    if (!reachable) {
      this.on.status("offline");
    } else {
      // The server is up but refused the stream: ask it why (a 401 or a bad filter).
      try {
        await api("/v1/events", { query: this.withLimit() });
      } catch (error) {
        if (error.status === 401 || error.status === 400 || error.status === 403) {
          this.stop();
          this.on.refused(error);
          return;
        }
      }
    }
    this.timer = setTimeout(() => this.open(), backoff(this.failures));
  }

  withLimit() {
    const query = new URLSearchParams(this.filter);
    query.set("limit", "1");
    return query;
  }
}
