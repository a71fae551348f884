/**
 * The fleet side of `pitcher serve --cluster`, imported by serve.ts only when clustering, so
 * a lone server never loads the fleet code or Redis.
 */
import os from "node:os";
import type { ApiKeySpec } from "../api/auth.ts";
import { FleetNode } from "../fleet/node.ts";
import { FleetServing, refuseWhenFenced } from "../fleet/nodeServing.ts";
import type { RatesWhenDown } from "../fleet/redisLimits.ts";
import { redactUrl } from "../fleet/redisUrl.ts";
import { fleetTenancy } from "../fleet/tenancy.ts";
import type { Pool } from "../runtime/Pool.ts";
import type { Serving } from "../runtime/Serving.ts";

export interface ClusterSettings {
  url: string;
  tlsCaFile?: string | undefined;
  advertise?: string | undefined;
  heartbeatMs: number;
  ttlMs?: number | undefined;
  leaseMs?: number | undefined;
  whenRedisDown?: { rates: RatesWhenDown; budgets: "refuse" | "admit" } | undefined;
}

/** The node's keys (the configuration's and the fleet's), limits and budgets, through Redis. */
export function nodeTenancy(cluster: ClusterSettings, configKeys: ApiKeySpec[], log: (m: string) => void, onRefused: (tenant: string, code: string) => void) {
  return fleetTenancy({
    redisUrl: cluster.url,
    tlsCaFile: cluster.tlsCaFile,
    configKeys,
    heartbeatMs: cluster.heartbeatMs,
    leaseMs: cluster.leaseMs ?? 10_000,
    whenRedisDown: cluster.whenRedisDown ?? { rates: "local", budgets: "refuse" },
    log,
    onRefused,
  });
}

/** The address routers reach: the one given, else where the server listens (a wildcard host becomes this machine's name). */
function advertised(listenUrl: string, advertise: string | undefined): string {
  if (advertise) return advertise.replace(/\/$/, "");
  const u = new URL(listenUrl);
  if (u.hostname === "0.0.0.0" || u.hostname === "[::]") u.hostname = os.hostname();
  return u.origin;
}

/** `windowSlo`: per model, the last minute's requests scored and met (the dashboard's), published in the record. */
export function fleetNode(pool: Pool, inner: Serving, cluster: ClusterSettings, log: (m: string) => void, windowSlo?: () => Record<string, { scored: number; met: number }>) {
  const serving = new FleetServing(inner, (id) => pool.scheduler.requests.get(id)?.phase === "queued");
  let node: FleetNode | null = null;
  return {
    serving,
    refuse: refuseWhenFenced(() => node?.fenced ?? false),
    get summary() {
      return `fleet node ${node?.nodeId ?? "?"} via ${redactUrl(cluster.url)}`;
    },
    async join(listenUrl: string) {
      node = new FleetNode(pool, {
        redisUrl: cluster.url,
        tlsCaFile: cluster.tlsCaFile,
        advertiseUrl: advertised(listenUrl, cluster.advertise),
        heartbeatMs: cluster.heartbeatMs,
        ttlMs: cluster.ttlMs ?? 3 * cluster.heartbeatMs,
        log,
        ...(windowSlo ? { windowSlo } : {}),
      });
      await node.join();
    },
    /** DRAINING in Redis first, then the queued requests go back (each a 503 node_draining the router re-sends). */
    async drain() {
      await node?.drain();
      const n = serving.drain();
      if (n > 0) log(`fleet: handed ${n} queued request(s) back to the routers`);
    },
    async leave() {
      await node?.leave();
    },
  };
}
