/**
 * Requests and tokens per minute for a fleet: rate-limiter-flexible's Redis store (node-redis,
 * `useRedisPackage`) behind the same LimiterFactory a lone node uses with its memory store,
 * so every node and key counts in one window in Redis and a limit holds fleet-wide.
 *
 * Redis unreachable (a refused connection, or no answer within `timeoutMs`):
 * - `local` (default): the library's insurance limiter, in memory, with this node's share of
 *   the limit: the limit ÷ the live nodes (as last read from Redis), rounded down, at least 1;
 *   so the fleet admits about the limit between them while Redis is away. The local window
 *   starts when Redis is first missed; what was used in Redis's window is not known to it.
 * - `refuse`: 503 `limits_unavailable` for keys with a rate limit.
 */
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterRes } from "rate-limiter-flexible";
import type { LimiterFactory } from "../api/rateLimits.ts";
import { LimitsUnavailableError } from "../core/errors.ts";
import { type Redis, withTimeout } from "./redisScript.ts";

export type RatesWhenDown = "local" | "refuse";

interface StoreInternals {
  _upsert(...args: unknown[]): Promise<unknown>;
  _get(...args: unknown[]): Promise<unknown>;
  _delete(...args: unknown[]): Promise<unknown>;
}
const store = RateLimiterRedis.prototype as unknown as StoreInternals;

/** The Redis store, with every call given up after `timeoutMs` (a hung Redis then falls to the insurance limiter too). */
class TimedRateLimiterRedis extends RateLimiterRedis {
  timeoutMs = 1000;
  _upsert(...args: unknown[]): Promise<unknown> {
    return withTimeout(store._upsert.apply(this, args), this.timeoutMs, "a rate-limit count");
  }
  _get(...args: unknown[]): Promise<unknown> {
    return withTimeout(store._get.apply(this, args), this.timeoutMs, "a rate-limit read");
  }
  _delete(...args: unknown[]): Promise<unknown> {
    return withTimeout(store._delete.apply(this, args), this.timeoutMs, "a rate-limit delete");
  }
}

/** The insurance of `refuse`: every call fails with 503 limits_unavailable (the key is the tenant's name). */
class RefusingLimiter extends RateLimiterMemory {
  override consume(key: string | number): Promise<RateLimiterRes> {
    return Promise.reject(new LimitsUnavailableError("rate limits", String(key)));
  }
  override reward(): Promise<RateLimiterRes> {
    // A refund while Redis is away is lost: the window in Redis runs out on its own.
    return Promise.reject(new Error("Redis unreachable"));
  }
}

export interface FleetLimiters {
  factory: LimiterFactory;
  /** The live nodes changed: each local share becomes limit ÷ nodes. */
  setLiveNodes(n: number): void;
}

export function redisLimiters(client: Redis, whenDown: RatesWhenDown, timeoutMs: number): FleetLimiters {
  let nodes = 1;
  const insured: { limit: number; insurance: RateLimiterMemory }[] = [];
  const share = (limit: number) => Math.max(1, Math.floor(limit / nodes));
  return {
    factory: ({ keyPrefix, points, durationSeconds }) => {
      const insurance =
        whenDown === "local" ? new RateLimiterMemory({ keyPrefix, points: share(points), duration: durationSeconds }) : new RefusingLimiter({ points, duration: durationSeconds });
      insured.push({ limit: points, insurance });
      const limiter = new TimedRateLimiterRedis({
        storeClient: client,
        useRedisPackage: true,
        // While node-redis reconnects, fail at once (to the insurance) rather than wait.
        rejectIfRedisNotReady: true,
        keyPrefix,
        points,
        duration: durationSeconds,
        insuranceLimiter: insurance,
      });
      limiter.timeoutMs = timeoutMs;
      return limiter;
    },
    setLiveNodes(n: number) {
      nodes = Math.max(1, n);
      for (const i of insured) if (!(i.insurance instanceof RefusingLimiter)) i.insurance.points = share(i.limit);
    },
  };
}
