/**
 * The HTML report of `pitcher bench`: attainment and goodput against the arrival rate
 * (overall and per model), TTFT and TBT-gap distributions per rate, and the table. One
 * self-contained page: Chart.js is inlined, no CDN. The document it draws is the same one
 * `--report` writes as JSON, so its type lives here, beside the page that reads every field.
 */
import type { SloReport } from "../core/slo.ts";
import { chartJs } from "./chartJs.ts";
import { reportHeaderHtml, type ReportSetup } from "./reportHeader.ts";

/** One arrival rate of a bench run: overall and per-model SLO reports, errors, latency CDFs. */
export interface BenchRow {
  rate: number;
  overall: SloReport;
  perModel: Record<string, SloReport>;
  errors: Record<string, number>;
  /** Latency distributions: (ms, percentile) pairs. */
  ttftCdf: [number, number][];
  tbtCdf: [number, number][];
  /** Per tenant, when the workload names tenants: score and the errors its requests ended with. */
  perTenant?: Record<string, TenantReport>;
}

export type TenantReport = SloReport & { errors: Record<string, number> };

export interface BenchReport {
  url: string;
  workload: string;
  rates: BenchRow[];
  /** The header: target, workload, rates, SLO targets, seed (cli/bench.ts describes them). */
  setup?: ReportSetup;
}

export function benchReportHtml(r: BenchReport): string {
  const data = JSON.stringify(r).replace(/</g, "\\u003c");
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pitcher bench: ${esc(r.url)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1200px}h1{font-size:20px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:24px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}canvas{max-height:340px}</style>
<script>${chartJs()}</script></head><body>
<h1>Pitcher bench against <code>${esc(r.url)}</code></h1>
${r.setup ? reportHeaderHtml(r.setup) : `<p>Workload: ${esc(r.workload)}.</p>`}
<p>Deadline SLO per model (scheduling.md): failed, rejected and timed-out requests are misses.</p>
<table id="summary"></table>
<div class="grid"><div><h2>SLO attainment vs arrival rate</h2><canvas id="attainment"></canvas></div>
<div><h2>Goodput vs arrival rate</h2><canvas id="goodput"></canvas></div>
<div><h2>TTFT distribution (CDF)</h2><canvas id="ttft"></canvas></div>
<div><h2>TBT-gap distribution (CDF)</h2><canvas id="tbt"></canvas></div></div>
<script id="data" type="application/json">${data}</script>
<script>
Chart.defaults.animation = false;
const R = JSON.parse(document.getElementById("data").textContent);
const head = ["rate/s", "requests", "attainment", "on-schedule score", "goodput/s", "TTFT p50 ms", "TTFT p99 ms", "TBT p50 ms", "TBT p99 ms", "gaps > TBT", "errors"];
document.getElementById("summary").innerHTML = "<tr>" + head.map((h) => "<th>" + h + "</th>").join("") + "</tr>" + R.rates.map((x) => {
  const o = x.overall;
  const errs = Object.entries(x.errors).map(([k, v]) => k + ": " + v).join(", ") || "–";
  return "<tr data-rate=\\"" + x.rate + "\\">" + [x.rate, o.requests, o.attainment.toFixed(3), o.onScheduleScore.toFixed(3), o.goodput.toFixed(2), Math.round(o.ttftP50Ms), Math.round(o.ttftP99Ms), Math.round(o.tbtP50Ms), Math.round(o.tbtP99Ms), (100 * o.gapsOverTbt).toFixed(1) + "%", errs]
    .map((v) => "<td>" + String(v).replace(/[&<>]/g, "") + "</td>").join("") + "</tr>";
}).join("");
const rates = R.rates.map((x) => x.rate);
const models = [...new Set(R.rates.flatMap((x) => Object.keys(x.perModel)))].sort();
const series = (key) => [{ label: "overall", data: R.rates.map((x) => x.overall[key]), borderWidth: 3 }].concat(
  models.map((m) => ({ label: m, data: R.rates.map((x) => (x.perModel[m] ? x.perModel[m][key] : null)), borderDash: [4, 3], borderWidth: 1.5 })));
// Few ticks, never rotated: Chart.js skips labels that would collide (autoSkip) on top.
const ticks = { autoSkip: true, maxRotation: 0, maxTicksLimit: 8 };
// Past a handful of models, a swatch per model is unreadable: the legend keeps "overall" and
// each model's dashed line names its model in the tooltip on hover.
const legend = { labels: { filter: (item) => models.length <= 8 || item.text === "overall" } };
const xRate = { type: "linear", ticks, title: { display: true, text: "arrival rate (req/s)" } };
new Chart(document.getElementById("attainment"), { type: "line", data: { datasets: series("attainment").map((d) => ({ ...d, data: d.data.map((y, i) => ({ x: rates[i], y })) })) },
  options: { plugins: { legend }, scales: { x: xRate, y: { min: 0, max: 1, ticks } } } });
new Chart(document.getElementById("goodput"), { type: "line", data: { datasets: series("goodput").map((d) => ({ ...d, data: d.data.map((y, i) => ({ x: rates[i], y })) })) },
  options: { plugins: { legend }, scales: { x: xRate, y: { min: 0, ticks, title: { display: true, text: "req/s meeting the SLO" } } } } });
// The log axis labels only 1, 2 and 5 per decade, so its labels do not crowd.
const logTick = (v) => { const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)); return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6) ? (v >= 10 ? Math.round(v) : +v.toFixed(1)) : ""; };
const cdfChart = (id, key) => new Chart(document.getElementById(id), { type: "line",
  data: { datasets: R.rates.map((x) => ({ label: x.rate + " req/s", data: x[key].map(([v, p]) => ({ x: Math.max(v, 0.1), y: p })), pointRadius: 0 })) },
  options: { parsing: false, scales: { x: { type: "logarithmic", ticks: { autoSkip: true, maxRotation: 0, maxTicksLimit: 12, callback: logTick }, title: { display: true, text: "ms" } }, y: { min: 0, max: 100, title: { display: true, text: "percentile" } } } } });
cdfChart("ttft", "ttftCdf");
cdfChart("tbt", "tbtCdf");
</script></body></html>
`;
}
