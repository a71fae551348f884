/**
 * `pitcher route`: a stateless router with the OpenAI surface and no devices. Every POST
 * under /v1/ goes to a node (dispatch.ts); /v1/models is the union of the nodes' catalogs
 * with where each model is resident; /health and /metrics describe the router and the
 * fleet as it sees it. Any number of routers may run side by side.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { Counter, Gauge, Registry } from "prom-client";
import { BodyTooLargeError, ModelNotFoundError, NotFoundError, PitcherError, ShuttingDownError } from "../core/errors.ts";
import { fleetDashboardHtml } from "../views/fleetDashboardHtml.ts";
import { dashboardState, type NodeCounts } from "./dashboard.ts";
import { type DispatchOptions, Dispatcher, sendError } from "./dispatch.ts";
import { isFresh } from "./routing.ts";
import { FleetView } from "./view.ts";

export interface RouterOptions extends Partial<DispatchOptions> {
  redisUrl: string;
  /** The CA for a `rediss://` URL whose certificate no public CA signed. */
  tlsCaFile?: string | undefined;
  host: string;
  port: number;
  /** How often the view is read (ms). */
  pollMs?: number;
  bodyLimitBytes?: number;
  log?: (msg: string) => void;
  /** How often `/dashboard/events` pushes the fleet (ms). */
  dashboardPushMs?: number;
}

export interface RunningRouter {
  url: string;
  view: FleetView;
  /** Stop taking requests, let those under way finish (at most `deadlineMs`), close. */
  shutdown(deadlineMs: number): Promise<void>;
}

const DEFAULTS: DispatchOptions = { maxAttempts: 4, budgetMs: 10_000, excludeMs: 3_000, watchMs: 100 };
/**
 * Redis counts as unreachable after this many polls without a read (1 s at the default
 * 250 ms): sooner than a node's record expires (3 heartbeats of 500 ms), so a router goes to
 * its last view before the nodes, fenced, start refusing requests routed on a live one.
 */
const UNREACHABLE_POLLS = 4;
/** How long a node may take to list its models for /v1/models. */
const CATALOG_TIMEOUT_MS = 2_000;

export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const pollMs = opts.pollMs ?? 250;
  const view = new FleetView({ redisUrl: opts.redisUrl, tlsCaFile: opts.tlsCaFile, pollMs, unreachableAfterMs: UNREACHABLE_POLLS * pollMs, log, subscribe: true });
  await view.start();

  const registry = new Registry();
  const routed = new Counter({ name: "pitcher_router_routed_total", help: "Requests answered through each node", labelNames: ["node"], registers: [registry] });
  const redispatched = new Counter({
    name: "pitcher_router_redispatched_total",
    help: "Tries that failed before the first byte and were sent elsewhere, by node and reason",
    labelNames: ["node", "reason"],
    registers: [registry],
  });
  const failed = new Counter({
    name: "pitcher_router_failed_total",
    help: "Answers a node failed after their first byte (ended with node_failed)",
    labelNames: ["node"],
    registers: [registry],
  });
  const refused = new Counter({ name: "pitcher_router_refused_total", help: "Requests the router answered itself with 429 or 503", labelNames: ["status"], registers: [registry] });
  new Gauge({
    name: "pitcher_router_nodes",
    help: "Nodes in the view, by state (STALE: its record is older than 2.5 heartbeats)",
    labelNames: ["node", "state"],
    registers: [registry],
    collect() {
      this.reset();
      const snap = view.snapshot();
      for (const r of snap.records) this.set({ node: r.nodeId, state: isFresh(r, snap.asOfMs) ? r.state : "STALE" }, 1);
    },
  });
  new Gauge({
    name: "pitcher_router_redis_reachable",
    help: "1 while the router reads Redis, 0 while it routes on its last view",
    registers: [registry],
    collect() {
      this.set(view.reachable ? 1 : 0);
    },
  });

  // The same counts per node for the dashboard (prom-client's are read asynchronously).
  const perNode = new Map<string, NodeCounts>();
  const tally = (node: string, key: keyof NodeCounts) => {
    const c = perNode.get(node) ?? { routed: 0, redispatched: 0, failed: 0 };
    c[key]++;
    perNode.set(node, c);
  };
  let refusedTotal = 0;
  const dispatcher = new Dispatcher(
    view,
    { ...DEFAULTS, ...definedOnly(opts) },
    {
      routed: (node) => {
        routed.inc({ node });
        tally(node, "routed");
      },
      redispatched: (node, reason) => {
        redispatched.inc({ node, reason });
        tally(node, "redispatched");
      },
      failed: (node) => {
        failed.inc({ node });
        tally(node, "failed");
      },
      refused: (status) => {
        refused.inc({ status: String(status) });
        refusedTotal++;
      },
    },
  );
  const feeds = new Set<() => void>();
  const bodyLimit = opts.bodyLimitBytes ?? 1 << 20;
  let draining = false;
  let active = 0;
  let idle: (() => void) | null = null;

  const json = (res: ServerResponse, value: unknown, status = 200) => {
    const text = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  /** The union of the nodes' catalogs as the client's key sees them; a 401 when every node refused the key. */
  async function models(authorization: string | undefined): Promise<{ object: "list"; data: Record<string, unknown>[] } | { refused: unknown }> {
    const snap = view.snapshot();
    const fresh = snap.records.filter((r) => isFresh(r, snap.asOfMs));
    let refused: unknown = null;
    const lists = await Promise.all(
      fresh.map(async (r) => {
        try {
          const headers: Record<string, string> = authorization ? { authorization } : {};
          const res = await fetch(`${r.url}/v1/models`, { headers, signal: AbortSignal.timeout(CATALOG_TIMEOUT_MS) });
          if (res.status === 401) refused = await res.json();
          return { r, data: res.ok ? ((await res.json()) as { data: Record<string, unknown>[] }).data : null };
        } catch {
          return { r, data: [] };
        }
      }),
    );
    if (refused && lists.every((l) => l.data === null)) return { refused };
    const byId = new Map<string, Record<string, unknown>>();
    for (const { r, data } of lists) {
      for (const m of data ?? []) {
        const id = String(m.id);
        const entry = byId.get(id) ?? { ...m, meta: { ...(m.meta as object), nodes: [] as unknown[] } };
        const rec = r.models[id];
        (entry.meta as { nodes: unknown[] }).nodes.push({
          node: r.nodeId,
          state: r.state,
          model_state: rec?.state ?? "absent",
          queued: rec?.queued ?? 0,
          wait_ms: rec?.waitMs ?? null,
        });
        byId.set(id, entry);
      }
    }
    return { object: "list", data: [...byId.values()] };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    if (req.method === "GET" && path === "/health") {
      const snap = view.snapshot();
      return json(res, {
        status: draining ? "draining" : "ok",
        redis: snap.reachable ? "reachable" : "unreachable",
        nodes: snap.records.map((r) => ({ node: r.nodeId, url: r.url, state: isFresh(r, snap.asOfMs) ? r.state : "STALE" })),
      });
    }
    if (req.method === "GET" && path === "/metrics") {
      const text = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType });
      return void res.end(text);
    }
    if (req.method === "GET" && path === "/dashboard") {
      const page = fleetDashboardHtml();
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(page) });
      return void res.end(page);
    }
    if (req.method === "GET" && path === "/dashboard/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      const push = () => res.write(`event: state\ndata: ${JSON.stringify(dashboardState(view.snapshot(), perNode, refusedTotal))}\n\n`);
      push();
      const timer = setInterval(push, opts.dashboardPushMs ?? 500);
      const end = () => {
        clearInterval(timer);
        feeds.delete(end);
        if (!res.destroyed) res.end();
      };
      feeds.add(end);
      res.on("close", end);
      return;
    }
    if (req.method === "GET" && (path === "/v1/models" || path.startsWith("/v1/models/"))) {
      const list = await models(req.headers.authorization);
      if ("refused" in list) return json(res, list.refused, 401);
      if (path === "/v1/models") return json(res, list);
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      const m = list.data.find((x) => x.id === id);
      return m ? json(res, m) : sendError(res, new ModelNotFoundError(id));
    }
    if (req.method !== "POST" || !path.startsWith("/v1/")) return sendError(res, new NotFoundError(`${req.method} ${path}`));
    if (draining) return sendError(res, new ShuttingDownError("This router is shutting down; send the request to another router"));
    const body = await readBody(req, bodyLimit);
    if (body === "gone") return;
    if (body === "too_large") return sendError(res, new BodyTooLargeError(bodyLimit));
    let modelId: string | null = null;
    try {
      const parsed = JSON.parse(body.toString("utf8")) as { model?: unknown };
      if (typeof parsed.model === "string") modelId = parsed.model;
    } catch {
      // Not JSON: a node answers it with its own 400.
    }
    if (modelId !== null) {
      const snap = view.snapshot();
      const served = snap.records.some((r) => r.models[modelId!] !== undefined);
      if (!served && snap.records.length > 0) return sendError(res, new ModelNotFoundError(modelId));
    }
    await dispatcher.dispatch(req, res, body, modelId);
  }

  const server = http.createServer((req, res) => {
    active++;
    res.on("close", () => {
      active--;
      if (active === 0) idle?.();
    });
    handle(req, res).catch((e: unknown) => sendError(res, new PitcherError(`Internal error in the router: ${(e as Error).message}`, "internal_error", 500, "server_error")));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(opts.port, opts.host, resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  return {
    url: `http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${port}`,
    view,
    async shutdown(deadlineMs: number) {
      draining = true;
      // A dashboard's feed never ends by itself: end them, or they would hold the drain.
      for (const end of [...feeds]) end();
      server.close();
      server.closeIdleConnections();
      if (active > 0) await Promise.race([new Promise<void>((r) => (idle = r)), new Promise((r) => setTimeout(r, deadlineMs).unref())]);
      server.closeAllConnections();
      dispatcher.close();
      await view.close();
    },
  };
}

function definedOnly(o: Partial<DispatchOptions>): Partial<DispatchOptions> {
  return Object.fromEntries(Object.entries({ maxAttempts: o.maxAttempts, budgetMs: o.budgetMs, excludeMs: o.excludeMs, watchMs: o.watchMs }).filter(([, v]) => v !== undefined));
}

/** The whole body, or why there is none: past the limit, or the client went away before sending it all. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too_large" | "gone"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        resolve("too_large");
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(size > limit ? "too_large" : Buffer.concat(chunks)));
    req.on("error", reject);
    // A client gone mid-body: nothing to answer, but the promise must not wait for ever.
    req.on("close", () => {
      if (!req.complete) resolve("gone");
    });
  });
}
