/**
 * The simulator's report page (`pitcher plan --report`, `pitcher simulate --report`): attainment
 * against fleet size, TTFT and TBT-gap distributions, and a per-device timeline of what ran,
 * drawn with the same timeline view as the live dashboard. One self-contained page: Chart.js
 * is inlined, no CDN.
 */
import type { SloReport } from "../core/slo.ts";
import type { Command } from "../core/types.ts";
import { chartJs } from "./chartJs.ts";
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
}

export function simulationReportHtml(r: SimulationReportPage): string {
  const data = JSON.stringify(r).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pitcher simulation: ${r.policy} on ${r.devices} × ${r.accelerator}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1200px}h1{font-size:20px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:24px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}canvas{max-height:360px}</style>
<script>${chartJs()}</script><script>${timelineScript()}</script></head><body>
<h1>Pitcher simulation: <code>${r.policy}</code> on ${r.devices} × ${r.accelerator}</h1>
<table id="summary"></table>
<div class="grid"><div><h2>Attainment vs devices</h2><canvas id="sweep"></canvas></div>
<div><h2>TTFT and TBT-gap distributions (CDF)</h2><canvas id="lat"></canvas></div></div>
<h2>Per-device timeline (what ran when, coloured by model)</h2><div id="timeline"></div>
<script id="data" type="application/json">${data}</script>
<script>
const R = JSON.parse(document.getElementById("data").textContent);
Chart.defaults.animation = false;
const rows = [["requests", R.requests], ["SLO attainment", R.report.attainment],
  ["on-schedule score (reference system's; met at 0.9)", R.report.onScheduleScore], ["goodput (req/s)", R.report.goodput],
  ["TTFT p50 / p99 (ms)", R.report.ttftP50Ms + " / " + R.report.ttftP99Ms], ["TBT gap p99 (ms)", R.report.tbtP99Ms],
  ["gaps over TBT target", R.report.gapsOverTbt], ["device utilisation", R.utilization], ["model switches", R.switches]];
document.getElementById("summary").innerHTML = rows.map(([k, v]) => "<tr><th>" + k + "</th><td>" + v + "</td></tr>").join("");
new Chart(document.getElementById("sweep"), { type: "line", data: { labels: R.sweep.map(s => s.devices),
  datasets: [{ label: "attainment", data: R.sweep.map(s => s.attainment) }] }, options: { scales: { y: { min: 0, max: 1 }, x: { title: { display: true, text: "devices" } } } } });
new Chart(document.getElementById("lat"), { type: "line", data: { datasets: [
  { label: "TTFT (ms)", data: R.ttftCdf.map(([x, y]) => ({ x, y })) }, { label: "TBT gap (ms)", data: R.tbtCdf.map(([x, y]) => ({ x, y })) }] },
  options: { parsing: false, scales: { x: { type: "logarithmic", title: { display: true, text: "ms" } }, y: { title: { display: true, text: "percentile" } } } } });
const models = [...new Set(R.timeline.filter(e => e.model).map(e => e.model))].sort();
const devs = [...new Set(R.timeline.map(e => e.device))].sort((a, b) => a - b);
pitcherTimeline(document.getElementById("timeline"), { devices: devs.map(d => "device " + d), models,
  segments: R.timeline.map(e => ({ ...e, device: "device " + e.device })), fromMs: 0, toMs: Math.max(1, ...R.timeline.map(e => e.endMs)) });
</script></body></html>
`;
}
