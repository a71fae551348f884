/**
 * A node's membership in the fleet: its record in Redis, rewritten every heartbeat with a
 * TTL of a few heartbeats and stamped with Redis's clock, and rewritten at once (and
 * announced) when a model loads or leaves, a device fails or the node drains. Loaded only
 * when the node is given a cluster (`serve.ts` imports this module dynamically), so a lone
 * server never loads Redis.
 */
import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { ConfigError } from "../core/errors.ts";
import type { Pool } from "../runtime/Pool.ts";
import { EVENTS_CHANNEL, type NodeRecord, type NodeState, NODES_SET, nodeKey, poolRecord } from "./record.ts";
import { redactUrl, tlsSocketOptions } from "./redisUrl.ts";

export interface FleetNodeOptions {
  redisUrl: string;
  /** The CA for a `rediss://` URL whose certificate no public CA signed. */
  tlsCaFile?: string | undefined;
  /** Where routers reach this node. */
  advertiseUrl: string;
  heartbeatMs: number;
  /** How long a record lives unless renewed (default 3 heartbeats). */
  ttlMs: number;
  log: (msg: string) => void;
  /** Per model, the last minute's requests scored against their SLO and met: published for the routers' dashboards. */
  windowSlo?: () => Record<string, { scored: number; met: number }>;
}

/** How long the first record may take to be written before start-up fails. */
const JOIN_TIMEOUT_MS = 5_000;

// Stamp the record with Redis's clock and write it with its TTL in one atomic step; announce it when asked.
const WRITE_RECORD = `
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = string.gsub(ARGV[1], '"stampMs":0', '"stampMs":' .. ms, 1)
redis.call('SET', KEYS[1], rec, 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if ARGV[4] == '1' then redis.call('PUBLISH', KEYS[3], ARGV[3]) end
return ms`;

export class FleetNode {
  readonly nodeId: string;
  readonly epoch = randomUUID();
  private state: NodeState = "READY";
  private readonly client;
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  private again: "quiet" | "announce" | null = null;
  /** performance.now() of the last record Redis took. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  private reachable = true;
  private left = false;
  /** The client's last error: why joining failed (a wrong password, an untrusted certificate). */
  private lastError: Error | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly opts: FleetNodeOptions,
  ) {
    this.nodeId = new URL(opts.advertiseUrl).host;
    this.client = createClient({
      url: opts.redisUrl,
      // Commands fail at once while Redis is away (the heartbeat tries again), rather than queue.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: opts.heartbeatMs * 2,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, opts.heartbeatMs),
        ...tlsSocketOptions({ url: opts.redisUrl, tlsCaFile: opts.tlsCaFile }),
      },
    });
    // Without a listener an error event would end the process; losing Redis is logged once by the heartbeat.
    this.client.on("error", (e: Error) => (this.lastError = e));
  }

  /** True when the record was not renewed within its TTL: routers with a live view count this node as gone. */
  get fenced(): boolean {
    return performance.now() - this.renewedAt > this.opts.ttlMs;
  }

  /** Connect, write the first record (or fail start-up), then renew every heartbeat and on every change. */
  async join(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const why = this.lastError ? `: ${this.lastError.message}` : "";
        reject(new ConfigError(`cluster.url: cannot reach Redis at ${redactUrl(this.opts.redisUrl)} within ${JOIN_TIMEOUT_MS} ms${why}`));
      }, JOIN_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.client.connect().then(() => this.write(true)), late]);
    } catch (e) {
      this.client.destroy();
      throw e instanceof ConfigError ? e : new ConfigError(`cluster.url: Redis at ${redactUrl(this.opts.redisUrl)}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    this.timer = setInterval(() => void this.renew("quiet"), this.opts.heartbeatMs);
    const changed = () => void this.renew("announce");
    this.pool.on("commandStart", (c) => {
      if (c.kind === "load" || c.kind === "evict") changed();
    });
    this.pool.on("command", (c) => {
      if (c.kind === "load" || c.kind === "evict" || c.crashed) changed();
    });
    this.pool.on("device", changed);
  }

  /** Mark the node DRAINING and announce it; waits at most a heartbeat for Redis. */
  async drain(): Promise<void> {
    this.state = "DRAINING";
    await this.renew("announce", this.opts.heartbeatMs);
  }

  /** Remove the record and announce it (routers drop the node at once), then disconnect. */
  async leave(): Promise<void> {
    this.left = true;
    clearInterval(this.timer);
    const bye = this.client
      .multi()
      .del(nodeKey(this.nodeId))
      .sRem(NODES_SET, this.nodeId)
      .publish(EVENTS_CHANNEL, this.nodeId)
      .exec()
      .catch(() => {});
    await Promise.race([bye, new Promise((r) => setTimeout(r, this.opts.heartbeatMs).unref())]);
    this.client.destroy();
  }

  /** One renewal at a time; a change while one is under way is written right after it. */
  private async renew(mode: "quiet" | "announce", waitMs?: number): Promise<void> {
    if (this.left) return;
    if (this.writing) {
      this.again = this.again === "announce" || mode === "announce" ? "announce" : "quiet";
      return;
    }
    this.writing = true;
    const write = this.write(mode === "announce").then(
      () => {
        if (!this.reachable) this.opts.log(`fleet: Redis reachable again; record renewed`);
        this.reachable = true;
      },
      (e: unknown) => {
        if (this.reachable) this.opts.log(`fleet: cannot renew the node record (${(e as Error).message}); routed work is refused once it expires`);
        this.reachable = false;
      },
    );
    // A Redis that hangs must not stall the heartbeat for ever: stop waiting after two heartbeats.
    await Promise.race([write, new Promise((r) => setTimeout(r, waitMs ?? this.opts.heartbeatMs * 2).unref())]);
    this.writing = false;
    const next = this.again;
    this.again = null;
    if (next) void this.renew(next);
  }

  private async write(announce: boolean): Promise<void> {
    const started = performance.now();
    // stampMs first and 0: the script puts Redis's time there.
    const text = JSON.stringify({ stampMs: 0, ...this.record() });
    await this.client.eval(WRITE_RECORD, {
      keys: [nodeKey(this.nodeId), NODES_SET, EVENTS_CHANNEL],
      arguments: [text, String(this.opts.ttlMs), this.nodeId, announce ? "1" : "0"],
    });
    this.renewedAt = started;
  }

  /** The record without its stamp: what the pool holds and predicts now. */
  record(): Omit<NodeRecord, "stampMs"> {
    const { devices, models } = poolRecord(this.pool.scheduler, this.pool.models.keys(), this.pool.now());
    for (const [id, w] of Object.entries(this.opts.windowSlo?.() ?? {})) if (models[id]) Object.assign(models[id], w);
    return {
      nodeId: this.nodeId,
      url: this.opts.advertiseUrl,
      epoch: this.epoch,
      state: this.state,
      heartbeatMs: this.opts.heartbeatMs,
      devices,
      models,
    };
  }
}
