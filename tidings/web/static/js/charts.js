// Charts of event counts (uPlot, stacked bars) and the subject heatmap, fed by
// GET /v1/stats/counts and kept current by the live events between two fetches. Each chart
// is redrawn at most once a second, whatever the rate of events.

import { api } from "./api.js";
import { h, localTime, utcOffsetMinutes, visible } from "./dom.js";

const COLORS = ["#3b6fd8", "#e07b39", "#2e9d6a", "#c2417a", "#8a63d2", "#c9a227", "#3aa7b8", "#7f8c8d", "#a0522d"];
const OTHER_COLOR = "#b8bfcc";
const REDRAW_MS = 1000;
const UPLOT = "/static/vendor/uplot/uPlot.iife.min.js";
let uplotLoading = null;

/** uPlot is loaded when a chart is first drawn, so the events list never waits for it. */
function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  uplotLoading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = UPLOT;
    script.onload = () => resolve(window.uPlot);
    script.onerror = () => reject(new Error("could not load " + UPLOT));
    document.head.append(script);
  });
  return uplotLoading;
}

/** Counts of one grid (an answer of /v1/stats/counts), updated in place by live events. */
export class Counts {
  constructor(body, top) {
    this.body = body;
    this.top = top;
    this.starts = body.starts.map((s) => Date.parse(s));
    this.width = this.starts.length > 1 ? this.starts[1] - this.starts[0] : (body.bucket === "day" ? 86_400_000 : 3_600_000);
  }

  /** Count one event; false when it falls past the grid (time for a new fetch). */
  add(event) {
    const at = Date.parse(event.received_at);
    const index = Math.floor((at - this.starts[0]) / this.width);
    if (index < 0) return true;
    if (index >= this.starts.length) return false;
    const key = this.body.by ? (event[this.body.by] ?? null) : null;
    const body = this.body;
    body.totals[index] += 1;
    body.total += 1;
    if (!body.by) return true;
    let series = body.series.find((s) => !s.other && s.key === key);
    if (!series) {
      const named = body.series.filter((s) => !s.other).length;
      series = named < this.top ? null : body.series.find((s) => s.other);
      if (!series) {
        series = { key: named < this.top ? key : null, total: 0, counts: this.starts.map(() => 0) };
        if (named >= this.top) Object.assign(series, { other: true, keys: 1 });
        body.series.splice(named < this.top ? named : body.series.length, 0, series);
      }
    }
    series.counts[index] += 1;
    series.total += 1;
    return true;
  }
}

export function seriesLabel(series) {
  if (series.other) return `other (${series.keys})`;
  return series.key === null ? "(none)" : visible(series.key);
}

/** A stacked bar chart in ``figure`` (its .plot, .legend and .total children). */
export class StackedChart {
  constructor(figure) {
    this.figure = figure;
    this.plot = null;
    this.counts = null;
  }

  draw(counts) {
    this.counts = counts;
    const body = counts.body;
    const total = this.figure.querySelector(".total");
    total.textContent = `${body.total} events`;
    total.dataset.total = String(body.total);
    const legend = this.figure.querySelector(".legend");
    const series = body.by ? body.series : [{ key: "events", total: body.total, counts: body.totals }];
    legend.replaceChildren(
      ...series.map((s, i) =>
        h("li", { dataset: { key: s.other ? "" : String(s.key ?? ""), total: String(s.total), other: s.other ? "1" : null } },
          h("i", { class: "swatch", style: `background:${color(s, i)}` }),
          seriesLabel(s), " ", h("b", null, String(s.total)))),
    );
    const container = this.figure.querySelector(".plot");
    const width = Math.max(260, container.clientWidth || 600);
    const xs = counts.starts.map((t) => t / 1000 + counts.width / 2000);
    // Stacked: series i is drawn as the sum of series 0..i, tallest first, so each shows
    // as its own band; the legend and tooltip give the plain counts.
    let running = xs.map(() => 0);
    const stacked = series.map((s) => (running = running.map((v, j) => v + s.counts[j])));
    const order = series.map((_, i) => i).reverse();
    const opts = {
      width,
      height: 200,
      legend: { show: false },
      cursor: { points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ space: 60 }, { size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000, 50000, 100000] }],
      series: [{}, ...order.map((i) => ({
        label: seriesLabel(series[i]),
        fill: color(series[i], i),
        stroke: color(series[i], i),
        width: 0,
        paths: uPlot.paths.bars({ size: [0.8, 60], align: 0 }),
        points: { show: false },
      }))],
    };
    const data = [xs, ...order.map((i) => stacked[i])];
    if (this.plot) this.plot.destroy();
    container.replaceChildren();
    this.plot = new uPlot(opts, data, container);
  }
}

function color(series, index) {
  return series.other ? OTHER_COLOR : COLORS[index % COLORS.length];
}

/** The subject x hour heatmap: a grid of cells, each with its count. */
export function drawHeatmap(container, counts) {
  const body = counts.body;
  const figure = container.closest("figure");
  const total = figure.querySelector(".total");
  total.textContent = `${body.total} events`;
  total.dataset.total = String(body.total);
  if (!body.series.length) {
    container.replaceChildren(h("p", { class: "empty" }, "No events with these filters in the last 24 hours."));
    return;
  }
  const max = Math.max(1, ...body.series.flatMap((s) => s.counts));
  const hours = counts.starts.map((t) => localTime(new Date(t).toISOString()).slice(11, 13));
  const header = h("div", { class: "hm-row hm-head" }, h("span", { class: "hm-label" }, "subject"),
    hours.map((hour, i) => h("span", { class: "hm-hour" }, i % 3 === 0 ? hour : "")));
  const rows = body.series.map((s) =>
    h("div", { class: "hm-row" },
      h("span", { class: "hm-label", title: seriesLabel(s) }, seriesLabel(s)),
      s.counts.map((n, i) => h("span", {
        class: "hm-cell",
        dataset: { subject: s.other ? "" : String(s.key ?? ""), hour: body.starts[i], count: String(n) },
        title: `${seriesLabel(s)} · ${localTime(body.starts[i]).slice(0, 16)} · ${n}`,
        style: n ? `background: rgba(59, 111, 216, ${(0.15 + 0.85 * n / max).toFixed(3)})` : null,
      }))));
  container.replaceChildren(header, ...rows);
}

/** The charts view: fetches, live updates and redraws throttled to once a second. */
export class ChartsView {
  constructor(root, onError) {
    this.root = root;
    this.onError = onError;
    this.hourly = new StackedChart(root.querySelector("[data-testid=chart-hourly]"));
    this.daily = new StackedChart(root.querySelector("[data-testid=chart-daily]"));
    this.heatmap = root.querySelector("[data-testid=heatmap]");
    this.by = root.querySelector("#chart-by");
    this.filter = new URLSearchParams();
    this.models = null;
    this.dirty = false;
    this.visible = false;
    this.loading = null;
    this.by.addEventListener("change", () => this.reload());
    setInterval(() => this.tick(), REDRAW_MS);
    window.addEventListener("resize", () => { this.dirty = true; });
  }

  setFilter(filter) {
    this.filter = filter;
    this.models = null;
    if (this.visible) this.reload();
  }

  show(visible) {
    this.visible = visible;
    if (visible && !this.models) this.reload();
    else if (visible) this.dirty = true;
  }

  async reload() {
    const by = this.by.value;
    const ask = (bucket, group, top) => {
      const query = new URLSearchParams(this.filter);
      query.set("bucket", bucket);
      query.set("utc_offset", String(utcOffsetMinutes()));
      query.set("top", String(top));
      if (bucket === "hour" && group === "subject") {
        const now = Date.now();
        query.set("since", new Date(now - 23 * 3_600_000 - (now % 3_600_000)).toISOString());
      }
      if (group) query.set("by", group);
      return api("/v1/stats/counts", { query }).then((body) => new Counts(body, top));
    };
    const loading = Promise.all([ask("hour", by, 8), ask("day", by, 8), ask("hour", "subject", 20), loadUplot()]);
    this.loading = loading;
    try {
      const [hourly, daily, subjects] = await loading;
      if (this.loading !== loading) return;
      this.models = { hourly, daily, subjects };
      this.draw();
    } catch (error) {
      if (this.loading === loading) this.onError(error);
    }
  }

  /** A live event that matches the filter. */
  add(event) {
    if (!this.models) return;
    const fits = Object.values(this.models).every((model) => model.add(event));
    if (!fits) this.models = null; // a new hour began: fetch the grids again on the next tick
    this.dirty = true;
  }

  tick() {
    if (!this.visible || !this.dirty) return;
    this.dirty = false;
    if (!this.models) this.reload();
    else this.draw();
  }

  draw() {
    this.hourly.draw(this.models.hourly);
    this.daily.draw(this.models.daily);
    drawHeatmap(this.heatmap, this.models.subjects);
    this.root.dataset.drawn = String(Date.now());
  }
}
