/**
 * `pitcher route` (a router in front of the fleet) and `pitcher fleet` (the fleet, printed).
 */
import { startRouter, type RunningRouter } from "../fleet/router.ts";
import { isFresh } from "../fleet/routing.ts";
import { FleetView } from "../fleet/view.ts";

export async function runRouter(opts: { cluster: string; clusterCa?: string; host: string; port: number }): Promise<RunningRouter> {
  return startRouter({ redisUrl: opts.cluster, tlsCaFile: opts.clusterCa, host: opts.host, port: opts.port });
}

/** The fleet as Redis holds it now: one line per node, then one per model on it. */
export async function fleetStatus(redisUrl: string, tlsCaFile?: string): Promise<string> {
  const view = new FleetView({ redisUrl, tlsCaFile, pollMs: 60_000, unreachableAfterMs: 60_000 });
  await view.start();
  try {
    const snap = view.snapshot();
    if (snap.records.length === 0) return "no nodes";
    const lines: string[] = [];
    for (const r of [...snap.records].sort((a, b) => a.nodeId.localeCompare(b.nodeId))) {
      const age = Math.max(0, Math.round(snap.asOfMs - r.stampMs));
      const devices = r.devices.map((d) => `${d.id}${d.up ? "" : " (down)"} ${(d.freeBytes / 1e6).toFixed(0)}/${(d.memoryBytes / 1e6).toFixed(0)} MB free`).join(", ");
      lines.push(`${r.nodeId}  ${isFresh(r, snap.asOfMs) ? r.state : "STALE"}  ${r.url}  record ${age} ms old  devices: ${devices}`);
      for (const [id, m] of Object.entries(r.models).sort(([a], [b]) => a.localeCompare(b)))
        lines.push(`  ${id.padEnd(24)} ${m.state.padEnd(8)} queued ${String(m.queued).padStart(3)}  running ${String(m.running).padStart(3)}  predicted wait ${m.waitMs} ms`);
    }
    return lines.join("\n");
  } finally {
    await view.close();
  }
}
