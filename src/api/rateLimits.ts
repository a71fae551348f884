/**
 * Per-key limits: requests and tokens per minute (rate-limiter-flexible) and token budgets
 * per period (ours: reserve prompt + max tokens at admission, settle the actual use at the
 * end). Both sit behind small interfaces whose one-node implementations live in memory; a
 * fleet plugs in the same library's Redis store (`RateLimiterRedis` is a
 * `RateLimiterAbstract` too) and a Redis budget with the same reserve/settle/lease contract.
 */
import { randomUUID } from "node:crypto";
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

/** Makes one limiter: `points` per `durationSeconds` window, keys under `keyPrefix`. */
export type LimiterFactory = (options: { keyPrefix: string; points: number; durationSeconds: number }) => RateLimiterAbstract;

/** One node: counters in this process. */
export const memoryLimiters: LimiterFactory = ({ keyPrefix, points, durationSeconds }) => new RateLimiterMemory({ keyPrefix, points, duration: durationSeconds });

/** What a limit says after a check: the OpenAI `x-ratelimit-*` headers are made from it. */
export interface LimitState {
  limit: number;
  remaining: number;
  resetMs: number;
}

export type LimitCheck = { ok: true; state: LimitState; windowEndsAtMs: number } | { ok: false; state: LimitState };

/** Take `points` from the key's window, or say how long until it has them. */
export async function take(limiter: RateLimiterAbstract, key: string, points: number, nowMs: number): Promise<LimitCheck> {
  try {
    const res = await limiter.consume(key, points);
    return { ok: true, state: { limit: limiter.points, remaining: res.remainingPoints, resetMs: res.msBeforeNext }, windowEndsAtMs: nowMs + res.msBeforeNext };
  } catch (e) {
    // The library rejects with its result when the points are not there, with an Error when the store fails.
    if (!(e instanceof RateLimiterRes)) throw e;
    // The library counted the refused points: a refusal must not use up the window.
    await limiter.reward(key, points);
    return { ok: false, state: { limit: limiter.points, remaining: Math.max(0, limiter.points - e.consumedPoints + points), resetMs: e.msBeforeNext } };
  }
}

/** Give back points taken in a window that is still open (a later window is not credited). */
export async function giveBack(limiter: RateLimiterAbstract, key: string, points: number, windowEndsAtMs: number, nowMs: number): Promise<void> {
  if (points > 0 && nowMs < windowEndsAtMs) await limiter.reward(key, points);
}

export type BudgetPeriod = "hour" | "day" | "week" | "month";

export interface BudgetLimit {
  tokens: number;
  period: BudgetPeriod;
}

export interface BudgetReservation {
  id: string;
  tenant: string;
  tokens: number;
}

export type BudgetAnswer = { ok: true; reservation: BudgetReservation; remaining: number } | { ok: false; remaining: number; resetMs: number };

/**
 * Token budgets. `reserve` takes prompt + max tokens out of what is left in the period, in
 * one step, or refuses; `settle` replaces the reservation with what was used. A reservation
 * not settled within its lease returns to the budget (a Redis store needs that: a node that
 * dies holding reservations must not leak them).
 */
export interface TokenBudget {
  reserve(tenant: string, tokens: number, limit: BudgetLimit): Promise<BudgetAnswer>;
  settle(reservation: BudgetReservation, usedTokens: number): Promise<void>;
  /** Tokens left in the current period (reservations counted as spent). */
  remaining(tenant: string, limit: BudgetLimit): number | Promise<number>;
}

interface TenantSpend {
  periodStartMs: number;
  spent: number;
  reservations: Map<string, { tokens: number; expiresAtMs: number }>;
}

/** Start of the calendar period (UTC) holding `nowMs`, and the start of the next. */
export function periodBounds(period: BudgetPeriod, nowMs: number): { startMs: number; endMs: number } {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  switch (period) {
    case "hour": {
      const s = Date.UTC(y, m, day, d.getUTCHours());
      return { startMs: s, endMs: s + 3_600_000 };
    }
    case "day":
      return { startMs: Date.UTC(y, m, day), endMs: Date.UTC(y, m, day + 1) };
    case "week": {
      // Weeks start on Monday.
      const s = Date.UTC(y, m, day - ((d.getUTCDay() + 6) % 7));
      return { startMs: s, endMs: s + 7 * 86_400_000 };
    }
    case "month":
      return { startMs: Date.UTC(y, m, 1), endMs: Date.UTC(y, m + 1, 1) };
  }
}

/** One node's budgets, in this process. */
export class MemoryTokenBudget implements TokenBudget {
  private readonly spend = new Map<string, TenantSpend>();

  constructor(
    private readonly now: () => number = Date.now,
    /** A reservation not settled within this returns to the budget. */
    private readonly leaseMs = 15 * 60_000,
  ) {}

  async reserve(tenant: string, tokens: number, limit: BudgetLimit): Promise<BudgetAnswer> {
    const nowMs = this.now();
    const s = this.current(tenant, limit, nowMs);
    const left = this.left(s, limit, nowMs);
    if (tokens > left) return { ok: false, remaining: left, resetMs: periodBounds(limit.period, nowMs).endMs - nowMs };
    const id = randomUUID();
    s.reservations.set(id, { tokens, expiresAtMs: nowMs + this.leaseMs });
    return { ok: true, reservation: { id, tenant, tokens }, remaining: left - tokens };
  }

  async settle(reservation: BudgetReservation, usedTokens: number): Promise<void> {
    const s = this.spend.get(reservation.tenant);
    if (!s) return;
    // A reservation of a period that has ended is charged to nobody: that period is closed.
    if (!s.reservations.delete(reservation.id)) return;
    s.spent += usedTokens;
  }

  remaining(tenant: string, limit: BudgetLimit): number {
    const nowMs = this.now();
    return this.left(this.current(tenant, limit, nowMs), limit, nowMs);
  }

  private current(tenant: string, limit: BudgetLimit, nowMs: number): TenantSpend {
    const { startMs } = periodBounds(limit.period, nowMs);
    let s = this.spend.get(tenant);
    if (!s || s.periodStartMs !== startMs) {
      s = { periodStartMs: startMs, spent: 0, reservations: new Map() };
      this.spend.set(tenant, s);
    }
    return s;
  }

  private left(s: TenantSpend, limit: BudgetLimit, nowMs: number): number {
    let reserved = 0;
    for (const [id, r] of s.reservations) {
      if (r.expiresAtMs <= nowMs) s.reservations.delete(id);
      else reserved += r.tokens;
    }
    return Math.max(0, limit.tokens - s.spent - reserved);
  }
}
