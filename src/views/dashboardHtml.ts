/**
 * The live dashboard page (`GET /dashboard`): one self-contained page (no CDN) that listens
 * to `/dashboard/events` (server-sent events) and draws the device timeline with the same
 * view as the simulator's report; per device what it is doing now (the running command's
 * kind, or busy with its bound requests between commands), its resident models and memory
 * split; per model the queues, SLO attainment and goodput, request rate, TTFT and TBT
 * percentiles and errors by code. Memory is in decimal units, as the config's sizes are
 * parsed ("80MB" is 80,000,000 bytes and shows as 80.0 MB).
 */
import { timelineScript } from "./timelineView.ts";

export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pitcher: live pool</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:20px;max-width:1400px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}
#status{color:#666}#status.live{color:#070}#status.lost{color:#b00}
.devices{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.device{border:1px solid #ddd;border-radius:6px;padding:8px 10px}.device.down{border-color:#d00;background:#fff5f5}
.bar{display:flex;height:14px;background:#eee;border-radius:3px;overflow:hidden;margin:6px 0 2px}
.bar .w{background:#3b5b92}.bar .k{background:#e08a2c}
.chip{display:inline-block;padding:1px 6px;border-radius:8px;color:#fff;margin:2px 4px 2px 0;font-size:12px}
.chip.loading{opacity:.55}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:right}th:first-child,td:first-child{text-align:left}
.act{display:inline-block;padding:0 6px;border-radius:4px;background:#eee;color:#444;font-size:12px}.act.on{background:#dff3e0;color:#064}
.device .error{color:#b00}.miss{color:#b00}.ok{color:#070}small{color:#666}
</style>
<script>${timelineScript()}</script></head><body>
<h1>Pitcher: live pool</h1>
<div id="status">connecting…</div>
<h2>Timeline <small id="window"></small></h2>
<div id="timeline"></div>
<h2>Devices</h2>
<div class="devices" id="devices"></div>
<h2>Models <small>(SLO over the window; failed and rejected requests are misses)</small></h2>
<table id="models"><thead><tr><th>model</th><th>waiting</th><th>running</th><th>attainment</th><th>goodput (req/s)</th><th>scored</th><th>attainment since start</th><th>tokens</th><th>requests/s</th><th>TTFT p50 / p99</th><th>TBT p50 / p99</th><th>errors</th></tr></thead><tbody></tbody></table>
<h2 id="tenants-title" hidden>Keys <small>(over the window)</small></h2>
<table id="tenants" hidden><thead><tr><th>key</th><th>requests</th><th>attainment</th><th>tokens</th></tr></thead><tbody></tbody></table>
<script>
let segments = [];
let models = [];
// Decimal units, as the config's sizes are parsed: "80MB" is 80e6 bytes, shown as 80.0 MB.
const MB = (b) => (Math.abs(b) >= 1e9 ? (b / 1e9).toFixed(2) + " GB" : (b / 1e6).toFixed(1) + " MB");
const ms = (x) => (x === null ? "–" : x < 10 ? x.toFixed(1) : x.toFixed(0));
const p5099 = (p) => (p.p50 === null ? "–" : ms(p.p50) + " / " + ms(p.p99) + " ms");
const errs = (e) => Object.entries(e).map(([code, n]) => esc(code) + " " + n).join(", ") || "0";
const KIND_LABEL = { decode: "decoding", prefill: "prefilling", load: "loading", evict: "evicting", swapIn: "swapping in", swapOut: "swapping out", busy: "busy" };
// What the device does now, and for how many requests (busy between commands is not idle).
function activityText(d) {
  if (d.activity === "idle") return '<span class="act">idle</span>';
  const what = (KIND_LABEL[d.activity] || d.activity) + (d.running && d.running.model ? " " + d.running.model : "");
  return '<span class="act on">' + esc(what) + "</span>" + (d.boundRequests ? " <small>" + d.boundRequests + " request" + (d.boundRequests === 1 ? "" : "s") + "</small>" : "");
}
const pct = (x) => (x === null ? "–" : (100 * x).toFixed(1) + "%");
const esc = pitcherEscape;
// A device that is not up: restarting (quick retries) or down (retried at the longest wait), and why.
function downText(d, nowMs) {
  const r = d.restart;
  let text = "<b>" + (d.state === "down" ? "down" : "restarting") + "</b>";
  if (!r) return text;
  if (r.attempts > 0) text += " <small>after " + r.attempts + " failed start" + (r.attempts === 1 ? "" : "s") + "; " + (r.retryAtMs !== null && r.retryAtMs > nowMs ? "next try in " + ((r.retryAtMs - nowMs) / 1000).toFixed(0) + " s" : "trying now") + "</small>";
  return text + '<div class="error"><small>' + esc(r.lastError) + "</small></div>";
}
function render(s) {
  models = s.models.map((m) => m.id);
  segments = segments.concat(s.segments).filter((g) => g.endMs >= s.nowMs - s.windowMs);
  const now = s.devices.filter((d) => d.running).map((d) => ({ device: d.id, kind: d.running.kind, model: d.running.model, startMs: d.running.startMs, endMs: s.nowMs }));
  document.getElementById("window").textContent = "(last " + s.windowMs / 1000 + " s; server time " + (s.nowMs / 1000).toFixed(1) + " s)";
  pitcherTimeline(document.getElementById("timeline"), { devices: s.devices.map((d) => d.id), segments: segments.concat(now), fromMs: Math.max(0, s.nowMs - s.windowMs), toMs: Math.max(s.nowMs, 1000), models });
  document.getElementById("devices").innerHTML = s.devices.map((d) => {
    const w = (100 * d.weightBytes) / d.memoryBytes, k = (100 * d.kvBytes) / d.memoryBytes;
    return '<div class="device' + (d.up ? "" : " down") + '" data-device="' + esc(d.id) + '" data-state="' + esc(d.state) + '" data-activity="' + esc(d.activity) + '" data-requests="' + d.boundRequests + '"><b>' + esc(d.id) + "</b> " + (d.up ? activityText(d) : downText(d, s.nowMs)) +
      '<div class="bar"><div class="w" style="width:' + w + '%"></div><div class="k" style="width:' + k + '%"></div></div>' +
      "<small>weights " + MB(d.weightBytes) + " · KV " + MB(d.kvBytes) + " · free " + MB(d.memoryBytes - d.weightBytes - d.kvBytes) + " of " + MB(d.memoryBytes) + "</small><div>" +
      (d.resident.length ? d.resident.map((r) => '<span class="chip' + (r.ready ? "" : " loading") + '" data-resident="' + esc(r.model) + '" style="background:' + pitcherColour(models, r.model) + '">' + esc(r.model) + (r.ready ? "" : " (loading)") + "</span>").join("") : "<small>no model resident</small>") +
      "</div></div>";
  }).join("");
  document.querySelector("#models tbody").innerHTML = s.models.map((m) =>
    '<tr data-model="' + esc(m.id) + '"><td><span class="chip" style="background:' + pitcherColour(models, m.id) + '">' + esc(m.id) + "</span></td><td>" + m.waiting + "</td><td>" + m.running +
    '</td><td class="' + (m.window.attainment === null ? "" : m.window.attainment >= 0.9 ? "ok" : "miss") + '">' + pct(m.window.attainment) + "</td><td>" + m.window.goodput.toFixed(2) +
    "</td><td>" + m.window.scored + "</td><td>" + pct(m.total.attainment) + "</td><td>" + m.total.tokens + "</td><td>" + m.window.requestsPerS.toFixed(2) +
    '</td><td data-col="ttft">' + p5099(m.window.ttftMs) + '</td><td data-col="tbt">' + p5099(m.window.tbtMs) + '</td><td data-col="errors">' + errs(m.window.errorsByCode) + "</td></tr>").join("");
  const keyed = s.tenants.length > 0;
  document.getElementById("tenants").hidden = document.getElementById("tenants-title").hidden = !keyed;
  document.querySelector("#tenants tbody").innerHTML = s.tenants.map((t) =>
    '<tr data-tenant="' + esc(t.name) + '"><td>' + esc(t.name) + "</td><td>" + t.ended + "</td><td>" + pct(t.scored ? t.met / t.scored : null) + "</td><td>" + t.tokens + "</td></tr>").join("");
}
const source = new EventSource("/dashboard/events");
const status = document.getElementById("status");
source.addEventListener("state", (e) => {
  status.textContent = "live: updates pushed by the server";
  status.className = "live";
  render(JSON.parse(e.data));
});
source.onerror = () => {
  status.textContent = "connection lost; retrying…";
  status.className = "lost";
  segments = [];
};
</script></body></html>
`;
}
