// Dead letters: parked input with its reason and raw body; redrive one, or all of a source.

import { api } from "./api.js";
import { h, localTime, visible } from "./dom.js";

export class DeadLettersView {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.list = h("tbody");
    this.result = h("span", { class: "result", role: "status", "data-testid": "redrive-result" });
    const bulk = h("form", { class: "bulk", autocomplete: "off" },
      h("label", null, "source", h("input", { name: "source", required: true, placeholder: "devices", "data-testid": "redrive-source" })),
      h("button", { type: "submit", "data-testid": "redrive-all" }, "Redrive all of this source"),
      this.result);
    bulk.addEventListener("submit", (e) => { e.preventDefault(); this.redriveAll(String(new FormData(bulk).get("source")).trim()); });
    root.replaceChildren(
      h("h2", null, "Dead letters"),
      h("p", { class: "muted" }, "Input that could not become an event, kept with its raw bytes. Redrive maps it again with the source's current configuration."),
      bulk,
      h("div", { class: "table-wrap" }, h("table", { class: "grid", "data-testid": "dead-letters" },
        h("thead", null, h("tr", null, ["received", "source", "topic", "reason", "raw", ""].map((t) => h("th", null, t)))),
        this.list)));
  }

  async load() {
    try {
      const { dead_letters: letters } = await api("/v1/dead-letters", { query: { limit: "200" } });
      this.list.replaceChildren(...letters.flatMap((d) => this.row(d)));
      if (!letters.length) this.list.append(h("tr", null, h("td", { colspan: "6", class: "empty" }, "No dead letters.")));
    } catch (error) {
      this.onError(error);
    }
  }

  row(d) {
    const raw = h("tr", { class: "raw", hidden: true }, h("td", { colspan: "6" }, h("pre", { class: "body" }, d.raw)));
    const status = h("span", { class: "result", "data-testid": "dead-letter-result" });
    const redrive = h("button", { type: "button", class: "small", "data-testid": "dead-letter-redrive" }, "Redrive");
    redrive.addEventListener("click", async () => {
      try {
        const answer = await api(`/v1/dead-letters/${encodeURIComponent(d.id)}/redrive`, { method: "POST" });
        status.textContent = `stored as ${answer.events.map((e) => e.seq).join(", ")}`;
        setTimeout(() => this.load(), 1500);
      } catch (error) {
        status.textContent = error.message;
      }
    });
    const show = h("button", { type: "button", class: "small quiet", onclick: () => { raw.hidden = !raw.hidden; } }, "Raw");
    return [h("tr", { dataset: { letter: d.id }, "data-testid": "dead-letter-row" },
      h("td", null, localTime(d.received_at)),
      h("td", null, visible(d.source)),
      h("td", null, visible(d.topic ?? "")),
      h("td", { class: "reason" }, visible(d.reason)),
      h("td", { class: "raw-preview" }, h("code", null, visible(d.raw.length > 80 ? d.raw.slice(0, 80) + "…" : d.raw))),
      h("td", { class: "buttons" }, show, redrive, status)), raw];
  }

  async redriveAll(source) {
    if (!source) return;
    try {
      const answer = await api("/v1/dead-letters/redrive", { method: "POST", body: { source } });
      this.result.textContent = `redriven ${answer.redriven}, still failing ${answer.failed}`;
      await this.load();
    } catch (error) {
      this.result.textContent = error.message;
    }
  }
}
