/**
 * Token budgets shared by a fleet: one hash per key in Redis and Lua scripts that check and
 * change it in one atomic step each, on Redis's clock (no node's clock is compared with
 * another's). A reservation (prompt + max tokens) carries a lease; a node renews its leases
 * every heartbeat while their requests run, and a lease that runs out (its node died, or
 * lost Redis for longer than the lease) returns its tokens to the budget. So a budget is
 * never overspent (spent + reserved ≤ budget at every step) and never leaks.
 *
 * Redis layout, per key name (the `{…}` hash tag keeps a key's data on one Redis Cluster slot):
 * - `pitcher:budget:{name}`: hash `period` (start, ms), `spent`, `reserved`, `r:<id>` → tokens
 * - `pitcher:budget:{name}:leases`: sorted set, reservation id → lease end (ms)
 * - `pitcher:budget:{name}:settled:<id>`: what a settled reservation was charged, kept two
 *   leases, so a settle retried after a lost reply charges once.
 */
import { randomUUID } from "node:crypto";
import type { BudgetAnswer, BudgetLimit, BudgetReservation, TokenBudget } from "../api/rateLimits.ts";
import { LimitsUnavailableError } from "../core/errors.ts";
import { lua, type Redis, runScript, withTimeout } from "./redisScript.ts";

export const budgetKey = (tenant: string) => `pitcher:budget:{${tenant}}`;
const leasesKey = (tenant: string) => `${budgetKey(tenant)}:leases`;
const settledKey = (tenant: string, id: string) => `${budgetKey(tenant)}:settled:${id}`;

// Shared by every script: Redis's clock (or a test's), the calendar period in UTC (weeks
// start on Monday, as periodBounds in api/rateLimits.ts), a new period starting afresh,
// and expired leases giving their tokens back.
const PRELUDE = `
local function now_ms(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local DAY = 86400000
local function period(kind, now)
  if kind == 'hour' then local s = math.floor(now / 3600000) * 3600000; return s, s + 3600000 end
  local days = math.floor(now / DAY)
  if kind == 'day' then return days * DAY, (days + 1) * DAY end
  if kind == 'week' then local s = days - (days + 3) % 7; return s * DAY, (s + 7) * DAY end
  -- month: the civil date of 'days' (H. Hinnant's days-to-civil), then back to its first day
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  local len = ({31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31})[m]
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then len = 29 end
  local s = days - (d - 1)
  return s * DAY, (s + len) * DAY
end
local function fmt(n) return string.format('%.0f', n) end
local function roll(hash, leases, s, e)
  local cur = tonumber(redis.call('HGET', hash, 'period') or '-1')
  if cur < s then
    redis.call('DEL', hash, leases)
    redis.call('HSET', hash, 'period', fmt(s), 'spent', 0, 'reserved', 0)
  end
  -- Kept an hour past the period's end for late settles, then Redis drops it.
  redis.call('PEXPIREAT', hash, fmt(e + 3600000))
  redis.call('PEXPIREAT', leases, fmt(e + 3600000))
end
local function expire(hash, leases, now)
  local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', fmt(now))
  for _, id in ipairs(gone) do
    local tok = tonumber(redis.call('HGET', hash, 'r:' .. id) or '0')
    redis.call('HDEL', hash, 'r:' .. id)
    redis.call('HINCRBY', hash, 'reserved', -tok)
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', fmt(now)) end
end
local function left(hash, limit)
  local spent = tonumber(redis.call('HGET', hash, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', hash, 'reserved') or '0')
  return math.max(0, limit - spent - reserved), spent, reserved
end
`;

/** KEYS: hash, leases. ARGV: tokens, budget, period kind, lease ms, id, now ('' = Redis's). → {ok, left, ms to the period's end, period start} */
export const RESERVE = lua(`${PRELUDE}
local now = now_ms(ARGV[6])
local s, e = period(ARGV[3], now)
roll(KEYS[1], KEYS[2], s, e)
expire(KEYS[1], KEYS[2], now)
local room = left(KEYS[1], tonumber(ARGV[2]))
local tokens = tonumber(ARGV[1])
if tokens > room then return {0, room, e - now, fmt(s)} end
redis.call('HSET', KEYS[1], 'r:' .. ARGV[5], tokens)
redis.call('HINCRBY', KEYS[1], 'reserved', tokens)
redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[4])), ARGV[5])
return {1, room - tokens, e - now, fmt(s)}`);

/**
 * KEYS: hash, leases, settled marker. ARGV: id, used, the reservation's period start, budget,
 * period kind, lease ms, now. → tokens charged. A reservation still held is replaced by what
 * was used (at most what it reserved); one whose lease ran out (its tokens already returned)
 * is charged what still fits under the budget; one of a period that has ended, nothing.
 */
export const SETTLE = lua(`${PRELUDE}
local done = redis.call('GET', KEYS[3])
if done then return tonumber(done) end
local now = now_ms(ARGV[7])
local s, e = period(ARGV[5], now)
roll(KEYS[1], KEYS[2], s, e)
expire(KEYS[1], KEYS[2], now)
local used = tonumber(ARGV[2])
local charge = 0
if fmt(s) == ARGV[3] then
  local held = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
  if held then
    redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(held))
    charge = math.min(used, tonumber(held))
  else
    charge = math.min(used, (left(KEYS[1], tonumber(ARGV[4]))))
  end
  redis.call('HINCRBY', KEYS[1], 'spent', charge)
end
redis.call('SET', KEYS[3], charge, 'PX', 2 * tonumber(ARGV[6]))
return charge`);

/** KEYS: hash, leases. ARGV: lease ms, now, ids… → the ids whose lease had already run out. */
export const RENEW = lua(`${PRELUDE}
local now = now_ms(ARGV[2])
expire(KEYS[1], KEYS[2], now)
local lost = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], 'XX', fmt(now + tonumber(ARGV[1])), ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost`);

/** KEYS: hash, leases. ARGV: budget, period kind, now. → {left, spent, reserved, period start, period end} */
export const STATUS = lua(`${PRELUDE}
local now = now_ms(ARGV[3])
local s, e = period(ARGV[2], now)
roll(KEYS[1], KEYS[2], s, e)
expire(KEYS[1], KEYS[2], now)
local room, spent, reserved = left(KEYS[1], tonumber(ARGV[1]))
return {room, spent, reserved, fmt(s), fmt(e)}`);

export interface BudgetStatus {
  spent: number;
  reserved: number;
  remaining: number;
  periodStartMs: number;
  periodEndMs: number;
}

/** The scripts as calls; `nowMs` replaces Redis's clock (unit tests walk time with it). */
export class BudgetScripts {
  constructor(
    private readonly client: Redis,
    private readonly nowMs: () => number | undefined = () => undefined,
  ) {}

  private now(): string {
    const n = this.nowMs();
    return n === undefined ? "" : String(n);
  }

  async reserve(tenant: string, id: string, tokens: number, limit: BudgetLimit, leaseMs: number) {
    const r = (await runScript(
      this.client,
      RESERVE,
      [budgetKey(tenant), leasesKey(tenant)],
      [String(tokens), String(limit.tokens), limit.period, String(leaseMs), id, this.now()],
    )) as [number, number, number, string];
    return { ok: r[0] === 1, remaining: Number(r[1]), resetMs: Number(r[2]), periodStartMs: Number(r[3]) };
  }

  async settle(tenant: string, id: string, usedTokens: number, periodStartMs: number, limit: BudgetLimit, leaseMs: number): Promise<number> {
    const keys = [budgetKey(tenant), leasesKey(tenant), settledKey(tenant, id)];
    const args = [id, String(usedTokens), String(periodStartMs), String(limit.tokens), limit.period, String(leaseMs), this.now()];
    return Number(await runScript(this.client, SETTLE, keys, args));
  }

  async renew(tenant: string, ids: string[], leaseMs: number): Promise<string[]> {
    return (await runScript(this.client, RENEW, [budgetKey(tenant), leasesKey(tenant)], [String(leaseMs), this.now(), ...ids])) as string[];
  }

  async status(tenant: string, limit: BudgetLimit): Promise<BudgetStatus> {
    const r = (await runScript(this.client, STATUS, [budgetKey(tenant), leasesKey(tenant)], [String(limit.tokens), limit.period, this.now()])) as (number | string)[];
    return { remaining: Number(r[0]), spent: Number(r[1]), reserved: Number(r[2]), periodStartMs: Number(r[3]), periodEndMs: Number(r[4]) };
  }
}

export interface RedisBudgetOptions {
  /** How long a reservation lives unless renewed (ms). */
  leaseMs: number;
  /** How often running requests' leases are renewed (ms): the node's heartbeat. */
  renewMs: number;
  /** Redis unreachable: refuse (503 `limits_unavailable`) or admit without charging. */
  whenDown: "refuse" | "admit";
  /** How long a call may wait for Redis before it counts as unreachable (ms). */
  timeoutMs: number;
  log: (msg: string) => void;
}

interface Held extends BudgetReservation {
  periodStartMs: number;
  limit: BudgetLimit;
  /** Set once the request ended and its settle has not reached Redis yet. */
  used?: number;
}

/** The fleet's TokenBudget: reservations in Redis, their leases renewed while this node holds them. */
export class RedisTokenBudget implements TokenBudget {
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;
  private readonly scripts: BudgetScripts;
  private warned = false;

  constructor(
    client: Redis,
    private readonly opts: RedisBudgetOptions,
  ) {
    this.scripts = new BudgetScripts(client);
    this.timer = setInterval(() => void this.tick(), opts.renewMs);
    this.timer.unref();
  }

  private call<T>(p: Promise<T>, what: string): Promise<T> {
    return withTimeout(p, this.opts.timeoutMs, what).then(
      (v) => {
        this.warned = false;
        return v;
      },
      (e: unknown) => {
        if (!this.warned)
          this.opts.log(`fleet: budgets: Redis unreachable (${(e as Error).message}); ${this.opts.whenDown === "refuse" ? "refusing" : "admitting unchecked"} budgeted requests`);
        this.warned = true;
        throw e;
      },
    );
  }

  async reserve(tenant: string, tokens: number, limit: BudgetLimit): Promise<BudgetAnswer> {
    const id = randomUUID();
    let r: Awaited<ReturnType<BudgetScripts["reserve"]>>;
    try {
      r = await this.call(this.scripts.reserve(tenant, id, tokens, limit, this.opts.leaseMs), "a budget reservation");
    } catch {
      if (this.opts.whenDown === "refuse") throw new LimitsUnavailableError("budget", tenant);
      // Admitted unchecked: nothing is held, nothing will be charged.
      return { ok: true, reservation: { id: "", tenant, tokens }, remaining: 0 };
    }
    if (!r.ok) return { ok: false, remaining: r.remaining, resetMs: r.resetMs };
    this.held.set(id, { id, tenant, tokens, periodStartMs: r.periodStartMs, limit });
    return { ok: true, reservation: { id, tenant, tokens }, remaining: r.remaining };
  }

  async settle(reservation: BudgetReservation, usedTokens: number): Promise<void> {
    const h = this.held.get(reservation.id);
    if (!h) return;
    h.used = usedTokens;
    await this.trySettle(h);
  }

  /** A settle that fails stays held (its lease renewed) and is tried again every heartbeat. */
  private async trySettle(h: Held): Promise<void> {
    try {
      await this.call(this.scripts.settle(h.tenant, h.id, h.used!, h.periodStartMs, h.limit, this.opts.leaseMs), "a budget settle");
      this.held.delete(h.id);
    } catch {
      // kept in `held`: retried at the next tick
    }
  }

  async remaining(tenant: string, limit: BudgetLimit): Promise<number> {
    // NaN while Redis cannot be read: the gauge shows no number rather than a wrong one.
    return this.status(tenant, limit).then(
      (s) => s.remaining,
      () => Number.NaN,
    );
  }

  status(tenant: string, limit: BudgetLimit): Promise<BudgetStatus> {
    return this.call(this.scripts.status(tenant, limit), "a budget status");
  }

  /** Renew the leases of every reservation this node holds; retry the settles that failed. */
  private async tick(): Promise<void> {
    const byTenant = new Map<string, string[]>();
    for (const h of this.held.values()) byTenant.set(h.tenant, [...(byTenant.get(h.tenant) ?? []), h.id]);
    for (const [tenant, ids] of byTenant) {
      try {
        const lost = await this.call(this.scripts.renew(tenant, ids, this.opts.leaseMs), "a lease renewal");
        if (lost.length > 0) this.opts.log(`fleet: budgets: ${lost.length} reservation(s) of '${tenant}' outlived their lease; their use is charged as far as the budget allows`);
      } catch {
        // Redis away: the leases run on; a reservation whose lease ends returns its tokens.
      }
    }
    for (const h of [...this.held.values()]) if (h.used !== undefined) await this.trySettle(h);
  }

  /** Reservations this node holds now (tests). */
  get holding(): number {
    return this.held.size;
  }

  /** Stop renewing; settles still pending get one more try (what is left returns with its lease). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const h of [...this.held.values()]) if (h.used !== undefined) await this.trySettle(h);
  }
}
