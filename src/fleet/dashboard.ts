/**
 * The router's dashboard state (`/dashboard/events`): the fleet as this router's view holds
 * it, each node with what this router did with it. Built from the records only, so a
 * dashboard costs the nodes nothing: their attainment comes in their records.
 */
import type { FleetDashboardState, FleetNodeView } from "../views/fleetDashboardHtml.ts";
import type { NodeRecord } from "./record.ts";
import { isFresh } from "./routing.ts";

/** What this router did with each node since it started. */
export interface NodeCounts {
  routed: number;
  redispatched: number;
  failed: number;
}

export function dashboardState(
  snap: { records: readonly NodeRecord[]; asOfMs: number; reachable: boolean },
  counts: ReadonlyMap<string, NodeCounts>,
  refused: number,
): FleetDashboardState {
  const nodes = [...snap.records]
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
    .map((r): FleetNodeView => {
      let scored = 0;
      let met = 0;
      const models = Object.entries(r.models)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([id, m]) => {
          scored += m.scored ?? 0;
          met += m.met ?? 0;
          return { id, state: m.state, queued: m.queued, running: m.running, waitMs: m.waitMs, scored: m.scored ?? 0, attainment: m.scored ? (m.met ?? 0) / m.scored : null };
        });
      return {
        nodeId: r.nodeId,
        url: r.url,
        state: isFresh(r, snap.asOfMs) ? r.state : "STALE",
        ageMs: Math.max(0, snap.asOfMs - r.stampMs),
        devices: r.devices.map((d) => ({ id: d.id, up: d.up, memoryBytes: d.memoryBytes, freeBytes: d.freeBytes, residents: d.residents })),
        models,
        attainment: scored ? met / scored : null,
        ...(counts.get(r.nodeId) ?? { routed: 0, redispatched: 0, failed: 0 }),
      };
    });
  return { redisReachable: snap.reachable, refused, nodes };
}
