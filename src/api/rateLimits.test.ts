import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createHash } from "node:crypto";
import { InvalidApiKeyError } from "../core/errors.ts";
import { formatReset, type KeyDirectory, makeTenant, Tenancy } from "./auth.ts";
import { giveBack, MemoryTokenBudget, memoryLimiters, periodBounds, take } from "./rateLimits.ts";

describe("token budgets in memory", () => {
  const limit = { tokens: 100, period: "day" as const };

  it("reserves prompt + max tokens, settles what was used, refuses what does not fit", async () => {
    let now = Date.UTC(2026, 0, 5, 12);
    const b = new MemoryTokenBudget(() => now);
    const r = await b.reserve("t", 80, limit);
    assert.ok(r.ok);
    assert.equal(b.remaining("t", limit), 20);
    assert.deepEqual(await b.reserve("t", 30, limit), { ok: false, remaining: 20, resetMs: 12 * 3_600_000 });
    await b.settle(r.reservation, 50);
    assert.equal(b.remaining("t", limit), 50);
    // The next day starts afresh; a reservation of the closed day is charged to nobody.
    const late = await b.reserve("t", 40, limit);
    assert.ok(late.ok);
    now += 12 * 3_600_000;
    assert.equal(b.remaining("t", limit), 100);
    await b.settle(late.reservation, 40);
    assert.equal(b.remaining("t", limit), 100);
  });

  it("returns a reservation nobody settled once its lease ends", async () => {
    let now = Date.UTC(2026, 0, 5, 12);
    const b = new MemoryTokenBudget(() => now, 60_000);
    assert.ok((await b.reserve("t", 90, limit)).ok);
    assert.equal(b.remaining("t", limit), 10);
    now += 60_000;
    assert.equal(b.remaining("t", limit), 100);
  });

  it("has calendar periods in UTC, weeks from Monday", () => {
    const wed = Date.UTC(2026, 0, 7, 15, 30);
    assert.deepEqual(periodBounds("week", wed), { startMs: Date.UTC(2026, 0, 5), endMs: Date.UTC(2026, 0, 12) });
    assert.deepEqual(periodBounds("month", wed), { startMs: Date.UTC(2026, 0, 1), endMs: Date.UTC(2026, 1, 1) });
    assert.deepEqual(periodBounds("hour", wed), { startMs: Date.UTC(2026, 0, 7, 15), endMs: Date.UTC(2026, 0, 7, 16) });
  });
});

describe("rate limits", () => {
  it("a refusal takes nothing from the window; unused points come back while it is open", async () => {
    const l = memoryLimiters({ keyPrefix: "test", points: 100, durationSeconds: 60 });
    const a = await take(l, "k", 70, 0);
    assert.ok(a.ok);
    assert.equal(a.state.remaining, 30);
    const b = await take(l, "k", 40, 0);
    assert.equal(b.ok, false);
    assert.equal(b.state.remaining, 30);
    if (a.ok) await giveBack(l, "k", 20, a.windowEndsAtMs, 0);
    const c = await take(l, "k", 50, 0);
    assert.ok(c.ok);
    assert.equal(c.state.remaining, 0);
  });

  it("formats reset times as OpenAI does", () => {
    assert.equal(formatReset(20.2), "21ms");
    assert.equal(formatReset(1500), "1.5s");
    assert.equal(formatReset(360_000), "6m0s");
  });
});

describe("keys from a directory (a fleet's, in Redis) beside the configuration's", () => {
  const hex = (k: string) => createHash("sha256").update(k).digest("hex");
  function directory(required: boolean, keys: Record<string, string>) {
    let refreshed = 0;
    const tenants = new Map(Object.entries(keys).map(([name, key]) => [hex(key), makeTenant({ name, weight: 1 }, memoryLimiters)]));
    const dir: KeyDirectory & { refreshed: () => number } = {
      required,
      refresh: async () => void refreshed++,
      byHash: (h) => tenants.get(h),
      tenants: () => [...tenants.values()],
      refreshed: () => refreshed,
    };
    return dir;
  }

  it("is open while neither has keys; once the directory requires them, an unknown key is 401", async () => {
    assert.equal(await new Tenancy([], { directory: directory(false, {}) }).identify(undefined), null);
    const closed = new Tenancy([], { directory: directory(true, {}) });
    await assert.rejects(closed.identify("Bearer sk-anything-123"), (e: unknown) => e instanceof InvalidApiKeyError);
    await assert.rejects(closed.identify(undefined), (e: unknown) => e instanceof InvalidApiKeyError);
  });

  it("finds a key in the configuration first, then in the directory, refreshing the directory before each check", async () => {
    const dir = directory(true, { fleet: "sk-fleet-0123456789" });
    const t = new Tenancy([{ name: "conf", key: "sk-conf-0123456789", weight: 1 }], { directory: dir });
    assert.equal((await t.identify("Bearer sk-conf-0123456789"))?.name, "conf");
    assert.equal((await t.identify("Bearer sk-fleet-0123456789"))?.name, "fleet");
    assert.equal(dir.refreshed(), 2);
    assert.deepEqual(
      t.allTenants().map((x) => x.name),
      ["conf", "fleet"],
    );
  });
});
