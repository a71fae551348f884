// The fleet's budget scripts (src/fleet/budgetScript.ts) against a real redis-server, on a
// clock the test sets: reserve and settle, leases that run out and are renewed, a settle
// retried, calendar periods as api/rateLimits.ts computes them, and many reservations at
// once never overspending. Then RedisTokenBudget with Redis gone: refuse or admit.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "redis";
import { type BudgetPeriod, periodBounds } from "../src/api/rateLimits.ts";
import { LimitsUnavailableError } from "../src/core/errors.ts";
import { BudgetScripts, RedisTokenBudget } from "../src/fleet/budgetScript.ts";
import { startRedis, type TestRedis } from "./redisServer.ts";

const LEASE_MS = 10_000;
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

describe("budget scripts (Lua, real Redis)", () => {
  let redis: TestRedis;
  let client: ReturnType<typeof createClient>;
  let nowMs = T0;
  let scripts: BudgetScripts;

  before(async () => {
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
    scripts = new BudgetScripts(client, () => nowMs);
  });
  after(async () => {
    client.destroy();
    await redis.stop();
  });

  it("reserves while the budget has room, refuses past it, and settles what was used", async () => {
    nowMs = T0;
    const limit = { tokens: 100, period: "day" as const };
    const a = await scripts.reserve("t1", "a", 60, limit, LEASE_MS);
    assert.deepEqual([a.ok, a.remaining], [true, 40]);
    const b = await scripts.reserve("t1", "b", 50, limit, LEASE_MS);
    assert.deepEqual([b.ok, b.remaining], [false, 40]);
    assert.equal(b.resetMs, periodBounds("day", T0).endMs - T0);
    assert.equal(await scripts.settle("t1", "a", 25, a.periodStartMs, limit, LEASE_MS), 25);
    assert.deepEqual(await scripts.status("t1", limit), { spent: 25, reserved: 0, remaining: 75, ...bounds("day", T0) });
    // A settle asked again (its reply lost) charges once.
    assert.equal(await scripts.settle("t1", "a", 25, a.periodStartMs, limit, LEASE_MS), 25);
    assert.equal((await scripts.status("t1", limit)).spent, 25);
    // Never more than was reserved.
    const c = await scripts.reserve("t1", "c", 10, limit, LEASE_MS);
    assert.equal(await scripts.settle("t1", "c", 999, c.periodStartMs, limit, LEASE_MS), 10);
  });

  it("a lease that runs out returns its tokens; a renewed one does not; a late settle charges only what fits", async () => {
    nowMs = T0;
    const limit = { tokens: 100, period: "day" as const };
    const dead = await scripts.reserve("t2", "dead", 70, limit, LEASE_MS);
    const alive = await scripts.reserve("t2", "alive", 30, limit, LEASE_MS);
    assert.ok(dead.ok && alive.ok);
    nowMs = T0 + LEASE_MS / 2;
    assert.deepEqual(await scripts.renew("t2", ["alive"], LEASE_MS), []);
    nowMs = T0 + LEASE_MS;
    assert.deepEqual(await scripts.status("t2", limit), { spent: 0, reserved: 30, remaining: 70, ...bounds("day", T0) });
    assert.deepEqual(await scripts.renew("t2", ["alive", "dead"], LEASE_MS), ["dead"]);
    // The room the dead node's lease gave back is taken by another request...
    const other = await scripts.reserve("t2", "other", 60, limit, LEASE_MS);
    assert.ok(other.ok);
    // ...so the dead one's settle, arriving late, is charged only the 10 left: never overspent.
    assert.equal(await scripts.settle("t2", "dead", 50, dead.periodStartMs, limit, LEASE_MS), 10);
    const s = await scripts.status("t2", limit);
    assert.equal(s.spent + s.reserved, 100);
    nowMs = T0 + 3 * LEASE_MS;
    assert.equal((await scripts.status("t2", limit)).reserved, 0);
  });

  it("a new period starts afresh; a reservation of the ended one is charged to nobody", async () => {
    nowMs = Date.UTC(2026, 10, 28, 23, 59, 59);
    const limit = { tokens: 100, period: "day" as const };
    const r = await scripts.reserve("t3", "r", 80, limit, LEASE_MS);
    assert.ok(r.ok);
    nowMs = Date.UTC(2026, 10, 29, 0, 0, 1);
    assert.equal((await scripts.status("t3", limit)).remaining, 100);
    assert.equal(await scripts.settle("t3", "r", 80, r.periodStartMs, limit, LEASE_MS), 0);
    assert.equal((await scripts.status("t3", limit)).spent, 0);
  });

  it("computes the calendar periods (UTC; weeks from Monday; leap years) as periodBounds does", async () => {
    const times = [
      Date.UTC(2024, 1, 29, 13),
      Date.UTC(2024, 1, 1),
      Date.UTC(2023, 1, 28, 23, 59),
      Date.UTC(2100, 1, 28),
      Date.UTC(2000, 1, 29),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2027, 0, 1),
      Date.UTC(2026, 10, 30, 0, 0, 0),
      Date.UTC(2026, 10, 29, 12),
    ];
    for (let i = 0; i < 40; i++) times.push(Date.UTC(2020, 0, 1) + Math.floor(((i * 7919) % 997) * 3.7e8) + i * 12_345_678);
    for (const t of times) {
      nowMs = t;
      for (const period of ["hour", "day", "week", "month"] as BudgetPeriod[]) {
        const s = await scripts.status(`p-${period}`, { tokens: 1, period });
        assert.deepEqual([s.periodStartMs, s.periodEndMs], [periodBounds(period, t).startMs, periodBounds(period, t).endMs], `${period} at ${new Date(t).toISOString()}`);
      }
    }
  });

  it("many reservations at once from several connections: exactly as many as fit", async () => {
    nowMs = T0;
    const limit = { tokens: 1000, period: "month" as const };
    const clients = await Promise.all(Array.from({ length: 3 }, () => createClient({ url: redis.url }).connect()));
    try {
      const answers = await Promise.all(Array.from({ length: 45 }, (_, i) => new BudgetScripts(clients[i % 3]!, () => nowMs).reserve("t4", `r${i}`, 100, limit, LEASE_MS)));
      assert.equal(answers.filter((a) => a.ok).length, 10);
      assert.deepEqual(await scripts.status("t4", limit), { spent: 0, reserved: 1000, remaining: 0, ...bounds("month", T0) });
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});

describe("RedisTokenBudget", () => {
  it("keeps a long request's reservation past its lease by renewing it every heartbeat, and settles it", async () => {
    const redis = await startRedis();
    const client = createClient({ url: redis.url });
    await client.connect();
    const leaseMs = 1_000;
    const budget = new RedisTokenBudget(client, { leaseMs, renewMs: 50, whenDown: "refuse", timeoutMs: 1_000, log: () => {} });
    const limit = { tokens: 100, period: "day" as const };
    const status = () => new BudgetScripts(client).status("t", limit);
    try {
      const held = await budget.reserve("t", 40, limit);
      assert.ok(held.ok);
      // Three leases long: without renewals the reservation would be gone by now.
      await new Promise((r) => setTimeout(r, 3 * leaseMs));
      assert.equal((await status()).reserved, 40);
      await budget.settle(held.reservation, 15);
      assert.deepEqual([(await status()).reserved, (await status()).spent], [0, 15]);
      assert.equal(budget.holding, 0);
    } finally {
      await budget.close();
      client.destroy();
      await redis.stop();
    }
  });
});

describe("RedisTokenBudget when Redis is unreachable", () => {
  for (const whenDown of ["refuse", "admit"] as const) {
    it(`whenDown ${whenDown}`, async () => {
      const redis = await startRedis();
      const client = createClient({ url: redis.url, disableOfflineQueue: true, socket: { reconnectStrategy: 50 } });
      client.on("error", () => {});
      await client.connect();
      const budget = new RedisTokenBudget(client, { leaseMs: LEASE_MS, renewMs: 100, whenDown, timeoutMs: 500, log: () => {} });
      try {
        const limit = { tokens: 100, period: "day" as const };
        const held = await budget.reserve("t", 40, limit);
        assert.ok(held.ok);
        await redis.stop();
        const r = budget.reserve("t", 10, limit);
        if (whenDown === "refuse") await assert.rejects(r, (e: unknown) => e instanceof LimitsUnavailableError && e.status === 503 && e.code === "limits_unavailable");
        else assert.equal((await r).ok, true);
        // A settle that cannot reach Redis is kept (and retried), not lost.
        if (held.ok) await budget.settle(held.reservation, 30);
        assert.equal(budget.holding, 1);
      } finally {
        await budget.close();
        client.destroy();
        await redis.stop();
      }
    });
  }
});

function bounds(period: BudgetPeriod, t: number) {
  const b = periodBounds(period, t);
  return { periodStartMs: b.startMs, periodEndMs: b.endMs };
}
