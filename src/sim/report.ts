/**
 * The simulation report: a JSON document (deterministic: the same seed gives the same bytes)
 * and a self-contained HTML page with charts — attainment against fleet size, TTFT and TBT
 * distributions, and a per-device timeline of what ran. Chart.js is inlined: no CDN.
 */
import { cdfPoints as cdf, type SloReport } from "../core/slo.ts";
import { chartJs } from "../observe/chartJs.ts";
import { timelineScript } from "../observe/timelineView.ts";
import type { SimResult, TimelineEntry } from "./Simulation.ts";

export interface SimulationReport {
  accelerator: string;
  policy: string;
  devices: number;
  requests: number;
  report: SloReport;
  utilization: number;
  switches: number;
  sweep: { devices: number; attainment: number; goodput: number }[];
  ttftCdf: [number, number][];
  tbtCdf: [number, number][];
  timeline: TimelineEntry[];
}

export function buildReport(
  meta: { accelerator: string; policy: string; devices: number },
  result: SimResult,
  sweep: SimulationReport["sweep"],
  timelineUntilMs: number,
): SimulationReport {
  const ttft: number[] = [];
  const gaps: number[] = [];
  for (const t of result.traces) {
    if (t.tokenTimesMs.length) ttft.push(t.tokenTimesMs[0]! - t.arrivalMs);
    for (let k = 1; k < t.tokenTimesMs.length; k++) gaps.push(t.tokenTimesMs[k]! - t.tokenTimesMs[k - 1]!);
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    ...meta,
    requests: result.traces.length,
    report: Object.fromEntries(Object.entries(result.report).map(([k, v]) => [k, typeof v === "number" ? round(v) : v])) as unknown as SloReport,
    utilization: round(result.utilization),
    switches: result.switches,
    sweep: sweep.map((s) => ({ devices: s.devices, attainment: round(s.attainment), goodput: round(s.goodput) })),
    ttftCdf: cdf(ttft),
    tbtCdf: cdf(gaps),
    timeline: result.timeline
      .filter((e) => e.startMs < timelineUntilMs)
      .map((e) => ({ ...e, startMs: round(e.startMs), endMs: round(Math.min(e.endMs, timelineUntilMs)) })),
  };
}

export function reportHtml(r: SimulationReport): string {
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
const rows = [["requests", R.requests], ["SLO attainment", R.report.attainment], ["goodput (req/s)", R.report.goodput],
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
