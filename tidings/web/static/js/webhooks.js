// Webhook endpoints: create (the secret shown once), pause and resume, rotate, delete; each
// endpoint's deliveries with their attempts, retry one, replay a window; the success rate of
// each endpoint's attempts in the last 24 hours (from /v1/stats).

import { api } from "./api.js";
import { copyText, fromLocalInput, h, localTime, visible } from "./dom.js";

const REFRESH_MS = 2000;

export class WebhooksView {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.selected = null;
    this.secretBox = h("div", { class: "secret", hidden: true, "data-testid": "webhook-secret-box" });
    this.list = h("tbody");
    this.deliveries = h("div", { class: "deliveries", "data-testid": "deliveries" });
    const form = h("form", { class: "create", autocomplete: "off" },
      h("label", null, "URL", h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/hook", "data-testid": "webhook-url" })),
      h("label", null, "event types", h("input", { name: "events", placeholder: "# (all), door.*", "data-testid": "webhook-events" })),
      h("label", null, "description", h("input", { name: "description" })),
      h("button", { type: "submit", "data-testid": "webhook-create" }, "Create endpoint"),
      h("span", { class: "field-error", role: "alert" }));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.create(form); });
    root.replaceChildren(
      h("h2", null, "Webhook endpoints"), form, this.secretBox,
      h("div", { class: "table-wrap" }, h("table", { class: "grid", "data-testid": "webhooks" },
        h("thead", null, h("tr", null, ["URL", "events", "state", "success 24 h", ""].map((t) => h("th", null, t)))),
        this.list)),
      this.deliveries);
  }

  async load() {
    try {
      const [{ webhooks }, stats] = await Promise.all([
        api("/v1/webhooks"),
        api("/v1/stats").catch(() => null),
      ]);
      const rates = (stats && stats.deliveries && stats.deliveries.by_endpoint_24h) || {};
      this.list.replaceChildren(...webhooks.map((w) => this.row(w, rates[w.id])));
      if (!webhooks.length) this.list.append(h("tr", null, h("td", { colspan: "5", class: "empty" }, "No endpoints yet.")));
      if (this.selected) {
        const still = webhooks.find((w) => w.id === this.selected.id);
        if (still) await this.showDeliveries(still);
        else { this.selected = null; this.deliveries.replaceChildren(); }
      }
    } catch (error) {
      this.onError(error);
    }
  }

  row(w, rate) {
    const state = w.disabled_reason ? `disabled: ${w.disabled_reason}` : w.active ? "active" : "paused";
    // Attempts of the last 24 hours that were answered 2xx.
    const rateText = !rate ? "no attempts" :
      `${Math.round(rate.success_rate * 100)}% (${rate.succeeded}/${rate.succeeded + rate.failed})`;
    const act = (label, fn, testid) => h("button", { type: "button", class: "small", "data-testid": testid, onclick: fn }, label);
    return h("tr", { dataset: { webhook: w.id }, "data-testid": "webhook-row" },
      h("td", { class: "url" }, visible(w.url), w.description ? h("div", { class: "muted" }, visible(w.description)) : null),
      h("td", null, visible(w.events.join(", "))),
      h("td", { "data-testid": "webhook-state" }, state),
      h("td", { "data-testid": "webhook-rate" }, rateText),
      h("td", { class: "buttons" },
        act("Deliveries", () => this.showDeliveries(w), "webhook-deliveries"),
        act(w.active ? "Pause" : "Resume", () => this.patch(w, { active: !w.active }), "webhook-toggle"),
        act("Rotate secret", () => this.rotate(w), "webhook-rotate"),
        act("Delete", () => this.remove(w), "webhook-delete")));
  }

  async create(form) {
    const error = form.querySelector(".field-error");
    error.textContent = "";
    const data = new FormData(form);
    const events = String(data.get("events") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const body = { url: String(data.get("url")).trim(), events: events.length ? events : ["#"] };
    const description = String(data.get("description") || "").trim();
    if (description) body.description = description;
    try {
      const created = await api("/v1/webhooks", { method: "POST", body });
      this.showSecret(created, "Endpoint created.");
      form.reset();
      await this.load();
    } catch (problem) {
      error.textContent = problem.message + (problem.details.length ? ": " + problem.details.map((d) => d.msg).join("; ") : "");
    }
  }

  showSecret(w, intro) {
    const secret = h("code", { "data-testid": "webhook-secret" }, w.secret);
    const copy = h("button", { type: "button", class: "small" }, "Copy");
    copy.addEventListener("click", async () => { copy.textContent = (await copyText(w.secret)) ? "Copied" : "Copy failed"; });
    const dismiss = h("button", { type: "button", class: "small quiet", onclick: () => { this.secretBox.hidden = true; this.secretBox.replaceChildren(); } }, "Done");
    this.secretBox.replaceChildren(
      h("p", null, intro, " Signing secret for ", visible(w.url), " — copy it now, it is not shown again:"),
      h("div", { class: "secret-line" }, secret, copy, dismiss));
    this.secretBox.hidden = false;
  }

  async patch(w, change) {
    try {
      await api(`/v1/webhooks/${encodeURIComponent(w.id)}`, { method: "PATCH", body: change });
      await this.load();
    } catch (error) { this.onError(error); }
  }

  async rotate(w) {
    try {
      const rotated = await api(`/v1/webhooks/${encodeURIComponent(w.id)}/rotate-secret`, { method: "POST" });
      this.showSecret({ ...w, ...rotated }, "Secret rotated; the old one keeps signing for the overlap period.");
    } catch (error) { this.onError(error); }
  }

  async remove(w) {
    if (!window.confirm(`Delete the endpoint ${w.url}? Its pending deliveries are cancelled.`)) return;
    try {
      await api(`/v1/webhooks/${encodeURIComponent(w.id)}`, { method: "DELETE" });
      if (this.selected && this.selected.id === w.id) this.selected = null;
      await this.load();
    } catch (error) { this.onError(error); }
  }

  /** Show an endpoint's deliveries; while shown, they refresh every few seconds. */
  async showDeliveries(w) {
    const same = this.selected && this.selected.id === w.id && this.deliveryBody;
    this.selected = w;
    let page;
    try {
      page = await api(`/v1/webhooks/${encodeURIComponent(w.id)}/deliveries`, { query: { limit: "100" } });
    } catch (error) { this.onError(error); return; }
    if (!same) {
      const replay = h("form", { class: "replay", autocomplete: "off" },
        h("label", null, "since", h("input", { type: "datetime-local", step: "1", name: "since", "data-testid": "replay-since" })),
        h("label", null, "until", h("input", { type: "datetime-local", step: "1", name: "until", "data-testid": "replay-until" })),
        h("label", { class: "inline" }, h("input", { type: "checkbox", name: "only_failed" }), " only failed"),
        h("button", { type: "submit", "data-testid": "replay" }, "Replay window"),
        h("span", { class: "result", role: "status", "data-testid": "replay-result" }));
      replay.addEventListener("submit", (e) => { e.preventDefault(); this.replay(w, replay); });
      this.deliveryBody = h("tbody");
      this.opened = new Set(); // deliveries whose attempts are shown
      this.deliveries.replaceChildren(
        h("h3", null, "Deliveries to ", visible(w.url)), replay,
        h("div", { class: "table-wrap" }, h("table", { class: "grid" },
          h("thead", null, h("tr", null, ["created", "event", "status", "attempts", "last", ""].map((t) => h("th", null, t)))),
          this.deliveryBody)));
    }
    const rows = page.deliveries.map((d) => this.deliveryRow(d));
    this.deliveryBody.replaceChildren(...(rows.length ? rows.flat() : [h("tr", null, h("td", { colspan: "6", class: "empty" }, "No deliveries yet."))]));
    clearTimeout(this.refresh);
    this.refresh = setTimeout(() => {
      if (this.selected && this.selected.id === w.id && !this.root.hidden) this.showDeliveries(w);
    }, REFRESH_MS);
  }

  deliveryRow(d) {
    const last = d.attempts[d.attempts.length - 1];
    const lastText = last ? `${last.status_code ?? last.error ?? "—"} · ${last.latency_ms ?? "—"} ms` : "—";
    const attempts = h("tr", { class: "attempts", hidden: !this.opened.has(d.id) },
      h("td", { colspan: "6" }, d.attempts.length ? h("ol", null, d.attempts.map((a) => h("li", null,
        h("span", null, localTime(a.at), " · ", String(a.status_code ?? "no response"), " · ", String(a.latency_ms ?? "—"), " ms",
          a.error ? " · " + visible(a.error) : ""),
        a.response_body ? h("pre", { class: "body" }, a.response_body) : null))) : "No attempt yet."));
    const retry = h("button", { type: "button", class: "small", "data-testid": "delivery-retry" }, "Retry");
    retry.addEventListener("click", async () => {
      try {
        await api(`/v1/deliveries/${encodeURIComponent(d.id)}/retry`, { method: "POST" });
        retry.textContent = "Queued";
      } catch (error) { this.onError(error); }
    });
    const toggle = h("button", { type: "button", class: "small quiet", onclick: () => {
      attempts.hidden = !attempts.hidden;
      if (attempts.hidden) this.opened.delete(d.id); else this.opened.add(d.id);
    } }, "Attempts");
    const main = h("tr", { dataset: { delivery: d.id, status: d.status }, "data-testid": "delivery-row" },
      h("td", null, localTime(d.created_at)),
      h("td", { title: d.event_id }, String(d.event_seq ?? d.event_id)),
      h("td", { class: `st-${d.status}`, "data-testid": "delivery-status" }, d.status),
      h("td", null, String(d.attempts.length)),
      h("td", null, lastText),
      h("td", { class: "buttons" }, toggle, d.status === "pending" ? null : retry));
    return [main, attempts];
  }

  async replay(w, form) {
    const result = form.querySelector(".result");
    const data = new FormData(form);
    const body = { only_failed: data.get("only_failed") === "on" };
    const since = fromLocalInput(String(data.get("since") || ""));
    const until = fromLocalInput(String(data.get("until") || ""));
    if (since) body.since = since;
    if (until) body.until = until;
    try {
      const answer = await api(`/v1/webhooks/${encodeURIComponent(w.id)}/replay`, { method: "POST", body });
      result.textContent = `${answer.replayed} events queued again`;
    } catch (error) {
      result.textContent = error.message;
    }
  }
}
