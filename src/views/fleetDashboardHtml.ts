/**
 * The router's live dashboard page (`GET /dashboard` on `pitcher route`): one
 * self-contained page (no CDN) that listens to `/dashboard/events` (server-sent events) and
 * draws every node of the fleet as the router sees it: its state (READY, DRAINING, or STALE
 * when its record is too old to route on), its devices with their memory and resident
 * models, and per model its state there, queue, running requests, the node's predicted wait,
 * its SLO attainment over the node's last minute and what this router sent it.
 */
import { timelineScript } from "./timelineView.ts";

/** One model on one node, as the page draws it. */
export interface FleetModelView {
  id: string;
  state: "resident" | "loading" | "absent";
  queued: number;
  running: number;
  waitMs: number;
  /** Over the node's last minute; null when the node publishes none (an older node) or nothing was scored. */
  attainment: number | null;
  scored: number;
}

export interface FleetNodeView {
  nodeId: string;
  url: string;
  state: "READY" | "DRAINING" | "STALE";
  /** How old the record was when the router read it (ms). */
  ageMs: number;
  devices: { id: string; up: boolean; memoryBytes: number; freeBytes: number; residents: string[] }[];
  models: FleetModelView[];
  /** The node's attainment over its last minute, all models together (null before any). */
  attainment: number | null;
  /** What this router did with the node since it started. */
  routed: number;
  redispatched: number;
  failed: number;
}

/** What `/dashboard/events` pushes: the whole fleet each time (a few KB per node). */
export interface FleetDashboardState {
  redisReachable: boolean;
  /** Requests this router answered itself (429 or 503: no node could take them). */
  refused: number;
  nodes: FleetNodeView[];
}

export function fleetDashboardHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pitcher: fleet</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:20px;max-width:1400px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 6px}
#status{color:#666}#status.live{color:#070}#status.lost{color:#b00}
.nodes{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px;margin-top:14px}
.node{border:1px solid #ddd;border-radius:6px;padding:10px 12px}.node[data-state="DRAINING"]{border-color:#e0a000;background:#fffbef}.node[data-state="STALE"]{border-color:#d00;background:#fff5f5}
.state{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;background:#dff3e0;color:#064}.state.DRAINING{background:#fdeebb;color:#754}.state.STALE{background:#fdd;color:#900}
.dev{margin:4px 0}.bar{display:inline-block;vertical-align:middle;width:120px;height:10px;background:#eee;border-radius:3px;overflow:hidden;margin:0 6px}.bar i{display:block;height:100%;background:#3b5b92}
.chip{display:inline-block;padding:1px 6px;border-radius:8px;color:#fff;margin:2px 4px 2px 0;font-size:12px}
table{border-collapse:collapse;margin-top:6px;width:100%}td,th{padding:2px 8px;border-bottom:1px solid #e3e3e3;text-align:right}th:first-child,td:first-child{text-align:left}
.miss{color:#b00}.ok{color:#070}small{color:#666}
</style>
<script>${timelineScript()}</script></head><body>
<h1>Pitcher: fleet</h1>
<div id="status">connecting…</div>
<div id="summary"></div>
<div class="nodes" id="nodes"></div>
<script>
const esc = pitcherEscape;
const MB = (b) => (Math.abs(b) >= 1e9 ? (b / 1e9).toFixed(2) + " GB" : (b / 1e6).toFixed(1) + " MB");
const pct = (x) => (x === null ? "–" : (100 * x).toFixed(1) + "%");
const cls = (x) => (x === null ? "" : x >= 0.9 ? "ok" : "miss");
function render(s) {
  const all = [...new Set(s.nodes.flatMap((n) => n.models.map((m) => m.id)))].sort();
  const ready = s.nodes.filter((n) => n.state === "READY").length;
  document.getElementById("summary").innerHTML = "<small>" + s.nodes.length + " node" + (s.nodes.length === 1 ? "" : "s") + ", " + ready + " ready · Redis " +
    (s.redisReachable ? "reachable" : "<b>unreachable</b> (routing on the last view)") + " · refused by this router: " + s.refused + "</small>";
  document.getElementById("nodes").innerHTML = s.nodes.map((n) =>
    '<div class="node" data-node="' + esc(n.nodeId) + '" data-state="' + n.state + '"><h2>' + esc(n.nodeId) + ' <span class="state ' + n.state + '">' + n.state + "</span></h2>" +
    "<small>" + esc(n.url) + " · record " + Math.round(n.ageMs) + " ms old · attainment " + '<span data-col="attainment" class="' + cls(n.attainment) + '">' + pct(n.attainment) + "</span>" +
    ' · routed <span data-col="routed">' + n.routed + "</span>, re-dispatched " + n.redispatched + ", failed " + n.failed + "</small>" +
    n.devices.map((d) => {
      const used = d.memoryBytes ? (100 * (d.memoryBytes - d.freeBytes)) / d.memoryBytes : 0;
      return '<div class="dev" data-device="' + esc(d.id) + '"><b>' + esc(d.id) + "</b>" + (d.up ? "" : ' <b class="miss">down</b>') + '<span class="bar"><i style="width:' + used + '%"></i></span><small>free ' + MB(d.freeBytes) + " of " + MB(d.memoryBytes) + "</small> " +
        (d.residents.length ? d.residents.map((r) => '<span class="chip" data-resident="' + esc(r) + '" style="background:' + pitcherColour(all, r) + '">' + esc(r) + "</span>").join("") : "<small>no model resident</small>") + "</div>";
    }).join("") +
    "<table><thead><tr><th>model</th><th>state</th><th>queued</th><th>running</th><th>predicted wait</th><th>attainment</th><th>scored</th></tr></thead><tbody>" +
    n.models.map((m) => '<tr data-model="' + esc(m.id) + '"><td>' + esc(m.id) + '</td><td data-col="state">' + m.state + '</td><td data-col="queued">' + m.queued + '</td><td data-col="running">' + m.running +
      '</td><td data-col="wait">' + Math.round(m.waitMs) + ' ms</td><td data-col="attainment" class="' + cls(m.attainment) + '">' + pct(m.attainment) + '</td><td data-col="scored">' + m.scored + "</td></tr>").join("") +
    "</tbody></table></div>").join("") || "<small>no node in Redis</small>";
}
const source = new EventSource("/dashboard/events");
const status = document.getElementById("status");
source.addEventListener("state", (e) => {
  status.textContent = "live: updates pushed by the router";
  status.className = "live";
  render(JSON.parse(e.data));
});
source.onerror = () => {
  status.textContent = "connection lost; retrying…";
  status.className = "lost";
};
</script></body></html>
`;
}
