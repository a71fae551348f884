// Tenants across a fleet as a user runs it: a throwaway redis-server, real `pitcher serve
// --cluster` processes (one device, a tiny model), `pitcher route`, `pitcher keys`, and the
// official openai client. A key's rate limit holds exactly across three nodes; a revoked key
// is refused at every node; a node killed holding budget reservations leaks nothing once
// their lease has run out; with Redis gone, rates fall back to each node's share and
// budgets refuse (503 limits_unavailable), as documented.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, it } from "node:test";
import OpenAI from "openai";
import { createClient } from "redis";
import { BudgetScripts } from "../src/fleet/budgetScript.ts";
import { CACHE_DIR, ROOT, runCli, STORIES, spawnServe, standInPaths, writeConfig } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redisServer.ts";

const running: ChildProcess[] = [];
let redis: TestRedis | undefined;
const TEST_TIMEOUT = { timeout: 600_000 };

const CONFIG_KEYS = { rated: "sk-rated-0123456789", metered: "sk-metered-0123456789" };
const BUDGET = { tokens: 1500, period: "day" as const };

function fleetConfig(redisUrl: string, model: string, extra = ""): string {
  return writeConfig(
    `cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false, admissionTtftFactor: 0, lateWaitCapFactor: false }\ndevices: { count: 1 }\n` +
      `cluster: { url: "${redisUrl}", heartbeatMs: 500${extra} }\nmodels:\n  - { id: m, path: ${model} }\n` +
      `auth:\n  keys:\n    - { name: rated, key: ${CONFIG_KEYS.rated}, rpm: 6 }\n    - { name: metered, key: ${CONFIG_KEYS.metered}, budget: { tokens: ${BUDGET.tokens}, period: ${BUDGET.period} } }\n`,
  );
}

async function startNodes(cfg: string, n: number): Promise<{ child: ChildProcess; url: string }[]> {
  const servers = Array.from({ length: n }, () => spawnServe(["--config", cfg, "--port", "0", "--no-request-log"]));
  for (const s of servers) running.push(s.child);
  return Promise.all(servers.map(async (s) => ({ child: s.child, url: await s.url })));
}

function spawnRouter(redisUrl: string): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "route", "--cluster", redisUrl, "--port", "0"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      const m = /listening on (\S+)/.exec(String(d));
      if (m) resolve(m[1]!);
    });
    child.on("exit", () => reject(new Error(`router exited: ${err}`)));
  });
}

const client = (url: string, apiKey: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });

/** One short chat completion: "ok", or the error the client raised. */
async function ask(c: OpenAI, maxTokens = 1): Promise<"ok" | InstanceType<typeof OpenAI.APIError>> {
  try {
    await c.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: maxTokens, temperature: 0 });
    return "ok";
  } catch (e) {
    if (e instanceof OpenAI.APIError) return e;
    throw e;
  }
}

async function routerMetric(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(" ").pop());
  return total;
}

describe("tenants in a fleet", () => {
  afterEach(async () => {
    for (const c of running.splice(0)) c.kill("SIGKILL");
    await redis?.stop();
    redis = undefined;
  });

  it("keys through the CLI: one rpm limit holds exactly across 3 nodes, refusals pass the router, a revoked key gets 401 everywhere; then Redis down", TEST_TIMEOUT, async () => {
    redis = await startRedis();
    const nodes = await startNodes(fleetConfig(redis.url, STORIES), 3);
    const routerUrl = await spawnRouter(redis.url);

    const add = await runCli(["keys", "add", "hammer", "--rpm", "12", "--weight", "2", "--cluster", redis.url]);
    assert.equal(add.code, 0, add.stderr);
    const key = add.stdout.trim();
    assert.match(key, /^sk-pitcher-\S+$/);

    // 36 requests at once, 12 at each node: exactly the limit is admitted, fleet-wide.
    const answers = await Promise.all(Array.from({ length: 36 }, (_, i) => ask(client(nodes[i % 3]!.url, key))));
    const refused = answers.filter((a) => a !== "ok");
    assert.equal(answers.length - refused.length, 12, `admitted: ${answers.filter((a) => a === "ok").length}`);
    for (const e of refused) {
      assert.equal(e.status, 429, String(e));
      assert.equal(e.code, "rate_limit_exceeded");
      assert.equal(e.type, "requests");
      assert.equal(e.headers?.get("x-ratelimit-limit-requests"), "12");
      assert.equal(e.headers?.get("x-ratelimit-remaining-requests"), "0");
      assert.ok(Number(e.headers?.get("retry-after")) >= 1);
    }

    // Through the router: the node's refusal comes back as it is, not tried elsewhere.
    const viaRouter = await ask(client(routerUrl, key));
    assert.ok(viaRouter !== "ok" && viaRouter.status === 429 && viaRouter.code === "rate_limit_exceeded", String(viaRouter));
    assert.equal(viaRouter.headers?.get("x-ratelimit-limit-requests"), "12");
    assert.equal(await routerMetric(routerUrl, "pitcher_router_redispatched_total", { reason: "rate_limited" }), 0);

    const list = await runCli(["keys", "list", "--cluster", redis.url]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^hammer {2}models all {2}rpm 12 {2}tpm - {2}weight 2 {2}budget -$/m);
    assert.ok(!list.stdout.includes(key), "never a key");

    // No key at all: 401.
    const none = await ask(client(nodes[0]!.url, ""));
    assert.ok(none !== "ok" && none.status === 401 && none.code === "invalid_api_key");

    const revoke = await runCli(["keys", "revoke", "hammer", "--cluster", redis.url]);
    assert.equal(revoke.code, 0, revoke.stderr);
    for (const url of [...nodes.map((n) => n.url), routerUrl]) {
      const r = await ask(client(url, key));
      assert.ok(r !== "ok" && r.status === 401 && r.code === "invalid_api_key", `${url}: ${String(r)}`);
      const models = await client(url, key)
        .models.list()
        .then(
          () => null,
          (e: unknown) => e,
        );
      assert.ok(models instanceof OpenAI.AuthenticationError, `${url} /v1/models: ${String(models)}`);
    }
    assert.equal((await runCli(["keys", "list", "--cluster", redis.url])).stdout.trim(), "no keys");

    // Redis gone: each node admits its share of a rate limit (6 ÷ 3 live nodes = 2), budgets refuse.
    await redis.stop();
    const rated = await Promise.all(Array.from({ length: 3 }, () => ask(client(nodes[1]!.url, CONFIG_KEYS.rated))));
    assert.equal(rated.filter((a) => a === "ok").length, 2, rated.map(String).join("; "));
    const over = rated.find((a) => a !== "ok")!;
    assert.equal(over.status, 429);
    assert.equal(over.code, "rate_limit_exceeded");
    const metered = await ask(client(nodes[1]!.url, CONFIG_KEYS.metered));
    assert.ok(metered !== "ok" && metered.status === 503 && metered.code === "limits_unavailable", String(metered));
    assert.equal(metered.headers?.get("retry-after"), "1");
  });

  it("a node killed holding budget reservations: they block the budget until their lease ends, then return; never overspent", TEST_TIMEOUT, async () => {
    redis = await startRedis();
    const leaseMs = 2_000;
    const nodes = await startNodes(fleetConfig(redis.url, standInPaths()["llama-16m-f16"]!, `, leaseMs: ${leaseMs}`), 2);
    const store = createClient({ url: redis.url });
    await store.connect();
    const status = () => new BudgetScripts(store).status("metered", BUDGET);
    try {
      // Four long streams on node 0, each reserving prompt + 300 tokens; wait until each has a token.
      const victim = client(nodes[0]!.url, CONFIG_KEYS.metered);
      const firstTokens: Promise<void>[] = [];
      for (let i = 0; i < 4; i++) {
        firstTokens.push(
          new Promise<void>((resolve, reject) => {
            victim.chat.completions
              .create({ model: "m", messages: [{ role: "user", content: `story ${i}` }], max_tokens: 300, temperature: 0, stream: true })
              .then(async (s) => {
                for await (const _ of s) resolve();
              })
              .catch((e: unknown) => reject(e));
          }).catch(() => {}),
        );
      }
      await Promise.all(firstTokens);
      const held = await status();
      assert.ok(held.reserved >= 4 * 300, `reserved ${held.reserved}`);
      nodes[0]!.child.kill("SIGKILL");

      // While the dead node's leases run, its reservations still count: another 300 does not fit.
      const blocked = await ask(client(nodes[1]!.url, CONFIG_KEYS.metered), 300);
      const now = await status();
      if (now.reserved > 0) assert.ok(blocked !== "ok" && blocked.status === 429 && blocked.code === "insufficient_quota", String(blocked));

      // After the lease: nothing reserved, nothing overspent, and the budget serves again.
      const deadline = Date.now() + leaseMs + 10_000;
      while ((await status()).reserved > 0) {
        assert.ok(Date.now() < deadline, "the reservations outlived their lease");
        await new Promise((r) => setTimeout(r, 100));
      }
      const after = await status();
      assert.equal(after.reserved, 0);
      assert.ok(after.spent <= BUDGET.tokens, `spent ${after.spent}`);
      assert.equal(await ask(client(nodes[1]!.url, CONFIG_KEYS.metered), 300), "ok");
      // Its settle runs as the answer leaves: wait for it.
      while ((await status()).reserved > 0) {
        assert.ok(Date.now() < deadline + 10_000, "the request was never settled");
        await new Promise((r) => setTimeout(r, 50));
      }
      const settled = await status();
      assert.ok(settled.spent > after.spent && settled.spent <= BUDGET.tokens, `spent ${settled.spent}`);
    } finally {
      store.destroy();
    }
  });
});
