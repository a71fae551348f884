/**
 * The simulator's report page (`pitcher plan --report`, `pitcher simulate --report`): attainment
 * against fleet size, TTFT and TBT-gap distributions, and a per-device timeline of what ran,
 * drawn with the same timeline view as the live dashboard. One self-contained page: Chart.js
 * is inlined, no CDN.
 */
import type { SloReport } from "../core/slo.ts";
import type { Command } from "../core/types.ts";
import { chartJs } from "./chartJs.ts";
import { fmtMsJs, reportHeaderHtml, type ReportSetup } from "./reportHeader.ts";
import { timelineScript } from "./timelineView.ts";

/**
 * The fields the page reads. The simulator builds the document (sim/report.ts's
 * SimulationReport); declaring what the page needs here keeps the views free of the
 * simulator, and the compiler checks the two agree where a composition root passes one in.
 */
export interface SimulationReportPage {
  accelerator: string;
  policy: string;
  devices: number;
  requests: number;
  report: SloReport;
  utilization: number;
  switches: number;
  sweep: { devices: number; attainment: number }[];
  ttftCdf: [number, number][];
  tbtCdf: [number, number][];
  timeline: { device: number; kind: Command["kind"]; model?: string; startMs: number; endMs: number }[];
  /** The header: policy, devices, accelerator, workload, SLOs, seed (cli/plan.ts describes them). */
  setup?: ReportSetup;
}

export function simulationReportHtml(r: SimulationReportPage): string {
  const data = JSON.stringify(r).replace(/</g, "\\u003c");
  const esc = (x: string) => x.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
  const setup = r.setup ?? [
    ["policy", r.policy],
    ["devices", `${r.devices} × ${r.accelerator}`],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pitcher simulation: ${esc(r.policy)} on ${r.devices} × ${esc(r.accelerator)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1200px}h1{font-size:20px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:24px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}canvas{max-height:360px}
#legend span.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px}#legend{font-size:12px;margin:4px 0}</style>
<script>${chartJs()}</script><script>${timelineScript()}</script></head><body>
<h1>Pitcher simulation: <code>${esc(r.policy)}</code> on ${r.devices} × ${esc(r.accelerator)}</h1>
${reportHeaderHtml(setup)}
<table id="summary"></table>
<div class="grid"><div><h2>Attainment vs devices</h2><canvas id="sweep"></canvas></div>
<div><h2>TTFT and TBT-gap distributions (CDF)</h2><canvas id="lat"></canvas></div></div>
<h2>Per-device timeline (what ran when, coloured by model group; hover a bar for its model)</h2>
<div id="legend"></div><div id="timeline"></div>
<script id="data" type="application/json">${data}</script>
<script>
${fmtMsJs}
const R = JSON.parse(document.getElementById("data").textContent);
Chart.defaults.animation = false;
const rows = [["requests", R.requests], ["SLO attainment", fmtRatio(R.report.attainment)],
  ["on-schedule score (reference system's; met at 0.9)", fmtRatio(R.report.onScheduleScore)], ["goodput (req/s)", R.report.goodput.toFixed(2)],
  ["TTFT p50 / p99 (ms)", fmtMs(R.report.ttftP50Ms) + " / " + fmtMs(R.report.ttftP99Ms)], ["TBT gap p99 (ms)", fmtMs(R.report.tbtP99Ms)],
  ["gaps over TBT target", (100 * R.report.gapsOverTbt).toFixed(1) + "%"], ["device utilisation", (100 * R.utilization).toFixed(1) + "%"], ["model switches", R.switches]];
document.getElementById("summary").innerHTML = rows.map(([k, v]) => "<tr><th>" + k + "</th><td>" + pitcherEscape(v) + "</td></tr>").join("");
// Few ticks, never rotated: Chart.js skips labels that would collide (autoSkip) on top.
const ticks = { autoSkip: true, maxRotation: 0, maxTicksLimit: 8 };
new Chart(document.getElementById("sweep"), { type: "line", data: { labels: R.sweep.map(s => s.devices),
  datasets: [{ label: "attainment", data: R.sweep.map(s => s.attainment) }] },
  options: { scales: { y: { min: 0, max: 1, ticks }, x: { ticks, title: { display: true, text: "devices" } } } } });
// The log axis labels only 1, 2 and 5 per decade, so its labels do not crowd.
const logTick = (v) => { const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)); return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6) ? fmtMs(v) : ""; };
new Chart(document.getElementById("lat"), { type: "line", data: { datasets: [
  { label: "TTFT (ms)", data: R.ttftCdf.map(([x, y]) => ({ x: Math.max(x, 0.1), y })), pointRadius: 0 },
  { label: "TBT gap (ms)", data: R.tbtCdf.map(([x, y]) => ({ x: Math.max(x, 0.1), y })), pointRadius: 0 }] },
  options: { parsing: false, scales: { x: { type: "logarithmic", ticks: { ...ticks, maxTicksLimit: 12, callback: logTick }, title: { display: true, text: "ms" } },
    y: { ticks, title: { display: true, text: "percentile" } } } } });
const models = [...new Set(R.timeline.filter(e => e.model).map(e => e.model))].sort();
const devs = [...new Set(R.timeline.map(e => e.device))].sort((a, b) => a - b);
pitcherTimeline(document.getElementById("timeline"), { devices: devs.map(d => "device " + d), models, legend: false,
  segments: R.timeline.map(e => ({ ...e, device: "device " + e.device })), fromMs: 0, toMs: Math.max(1, ...R.timeline.map(e => e.endMs)) });
// Many near-identical swatches cannot be told apart: colour by model group (instances of one
// base model, "qwen2.5-7b-3" → "qwen2.5-7b"), at most MAX_GROUPS of them, and let each bar's
// title name its model on hover.
const MAX_GROUPS = 9;
const baseOf = (m) => m.replace(/-\\d+$/, "");
const byBase = new Map();
for (const m of models) byBase.set(baseOf(m), (byBase.get(baseOf(m)) || []).concat(m));
let groups = [...byBase.entries()];
if (groups.length > MAX_GROUPS) {
  const kept = [...groups].sort((a, b) => b[1].length - a[1].length).slice(0, MAX_GROUPS - 1).map(([g]) => g);
  groups = groups.filter(([g]) => kept.includes(g)).concat([["other", groups.filter(([g]) => !kept.includes(g)).flatMap(([, ms]) => ms)]]);
}
const groupOf = new Map(), colourOf = new Map();
groups.forEach(([g, ms], i) => ms.forEach((m, k) => {
  groupOf.set(m, g);
  colourOf.set(m, "hsl(" + ((i * 360) / groups.length).toFixed(0) + ",65%," + (42 + (ms.length > 1 ? (k / (ms.length - 1)) * 16 : 0)).toFixed(0) + "%)");
}));
const groupColour = (ms) => colourOf.get(ms[0]);
for (const el of document.querySelectorAll("#timeline rect[data-model]")) {
  const m = el.getAttribute("data-model");
  if (!m || !colourOf.has(m)) continue;
  const kind = el.getAttribute("data-kind");
  if (kind === "decode" || kind === "prefill") el.setAttribute("fill", colourOf.get(m));
  if (kind === "prefill" || kind === "load") el.setAttribute("stroke", colourOf.get(m));
}
const sw = (c, extra) => '<span class="sw" style="background:' + c + ";" + (extra || "") + '"></span>';
document.getElementById("legend").innerHTML = groups.map(([g, ms]) =>
  '<span class="legend-entry" title="' + pitcherEscape(ms.join(", ")) + '">' + sw(groupColour(ms)) + pitcherEscape(g) + (ms.length > 1 ? " ×" + ms.length : "") + "</span>").join("") +
  '<div style="color:#555;margin:4px 0 6px">decode (solid) · prefill (pale) · loading (dark, model outline) · KV swap (grey, half height) · evict (black) · crash (red)</div>';
</script></body></html>
`;
}
