/**
 * Tenancy for a fleet node: the configuration's keys and the fleet's keys in Redis
 * (keys.ts), rates counted in Redis (redisLimits.ts) and budgets reserved and settled in
 * Redis with leases (budgetScript.ts), on one connection, plus one for announcements.
 */
import { createClient } from "redis";
import { type ApiKeySpec, Tenancy } from "../api/auth.ts";
import { ConfigError } from "../core/errors.ts";
import { RedisTokenBudget } from "./budgetScript.ts";
import { FleetKeys } from "./keys.ts";
import { type RatesWhenDown, redisLimiters } from "./redisLimits.ts";
import type { Redis } from "./redisScript.ts";
import { redactUrl, tlsSocketOptions } from "./redisUrl.ts";

export interface FleetTenancyOptions {
  redisUrl: string;
  /** CA (PEM) for a `rediss://` URL whose certificate no public CA signed. */
  tlsCaFile?: string | undefined;
  configKeys: ApiKeySpec[];
  heartbeatMs: number;
  leaseMs: number;
  whenRedisDown: { rates: RatesWhenDown; budgets: "refuse" | "admit" };
  log: (msg: string) => void;
  onRefused?: (tenant: string, code: string) => void;
}

/** How long the first read of the keys may take before start-up fails. */
const START_TIMEOUT_MS = 5_000;
/** A copy of the fleet's keys older than this is checked against Redis before use. */
const KEYS_MAX_AGE_MS = 1_000;

export async function fleetTenancy(opts: FleetTenancyOptions): Promise<{ tenancy: Tenancy; budget: RedisTokenBudget; readonly keysRequired: boolean; close(): Promise<void> }> {
  // A limit check waits at most this for Redis before it counts Redis as unreachable.
  const timeoutMs = Math.max(1_000, 2 * opts.heartbeatMs);
  const client: Redis = createClient({
    url: opts.redisUrl,
    // While Redis is away commands fail at once (and the limits fall back as configured) rather than queue.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: timeoutMs,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, opts.heartbeatMs),
      ...tlsSocketOptions({ url: opts.redisUrl, tlsCaFile: opts.tlsCaFile }),
    },
  });
  const subscriber = client.duplicate();
  // Without listeners an error event would end the process; what Redis's absence changes is logged where it matters.
  client.on("error", () => {});
  subscriber.on("error", () => {});
  const limiters = redisLimiters(client, opts.whenRedisDown.rates, timeoutMs);
  const keys = new FleetKeys(client, subscriber, {
    configNames: new Set(opts.configKeys.map((k) => k.name)),
    limiters: limiters.factory,
    onLiveNodes: (n) => limiters.setLiveNodes(n),
    maxAgeMs: KEYS_MAX_AGE_MS,
    timeoutMs,
    log: opts.log,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    });
    await Promise.race([Promise.all([client.connect(), subscriber.connect()]).then(() => keys.start()), late]);
  } catch (e) {
    client.destroy();
    subscriber.destroy();
    throw new ConfigError(`cluster.url: cannot read the fleet's keys from Redis at ${redactUrl(opts.redisUrl)}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  const budget = new RedisTokenBudget(client, { leaseMs: opts.leaseMs, renewMs: opts.heartbeatMs, whenDown: opts.whenRedisDown.budgets, timeoutMs, log: opts.log });
  const tenancy = new Tenancy(opts.configKeys, {
    limiters: limiters.factory,
    budget,
    directory: keys,
    ...(opts.onRefused ? { onRefused: opts.onRefused } : {}),
  });
  return {
    tenancy,
    budget,
    /** Whether keys are required: the configuration has some, or the fleet has had some. */
    get keysRequired() {
      return opts.configKeys.length > 0 || keys.required;
    },
    async close() {
      await budget.close();
      client.destroy();
      subscriber.destroy();
    },
  };
}
