// The fleet as a user runs it: a throwaway redis-server, three `pitcher serve --cluster`
// processes (one device each, small stand-ins) and a `pitcher route` process, with the
// official openai client. Nodes are killed, frozen and drained mid-run; so is Redis.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, afterEach, describe, it } from "node:test";
import OpenAI from "openai";
import { startRedis, type TestRedis } from "./redisServer.ts";
import { CACHE_DIR, ROOT, runCli, spawnServe, standInPaths, writeConfig } from "./helpers.ts";

const HEARTBEAT_MS = 500;
const TTL_MS = 3 * HEARTBEAT_MS;
const MODELS = ["a", "b", "c"];

type Outcome = { kind: "complete" } | { kind: "node_failed"; chunks: number } | { kind: "refused"; status: number; retryAfter: string | null } | { kind: "wrong"; detail: string };

interface Router {
  child: ChildProcess;
  url: string;
  client: OpenAI;
  exited: Promise<number | null>;
}

function spawnRouter(redisUrl: string): Promise<Router> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "route", "--cluster", redisUrl, "--port", "0"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let out = "";
  child.stderr!.on("data", (d) => {
    out += d;
    if (process.env.FLEET_DEBUG) process.stderr.write(d);
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      const m = /listening on (\S+)/.exec(String(d));
      if (m) resolve({ child, url: m[1]!, exited, client: new OpenAI({ baseURL: `${m[1]}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }) });
    });
    void exited.then(() => reject(new Error(`router exited: ${out}`)));
  });
}

const running: { kill(): void }[] = [];
let redis: TestRedis | undefined;

async function startFleet(nodes = 3) {
  redis = await startRedis();
  const paths = standInPaths();
  const cfg = writeConfig(
    `cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false }\ndevices: { count: 1 }\nserver: { drainTimeoutMs: 20000 }\ncluster: { url: "${redis.url}", heartbeatMs: ${HEARTBEAT_MS} }\nmodels:\n` +
      `  - { id: a, path: ${paths["llama-5m-q8"]} }\n  - { id: b, path: ${paths["llama-5m-f16"]} }\n  - { id: c, path: ${paths["llama-16m-f16"]} }\n`,
  );
  const servers = Array.from({ length: nodes }, () => spawnServe(["--config", cfg, "--port", "0", "--no-request-log"]));
  for (const s of servers) running.push({ kill: () => s.child.kill("SIGKILL") });
  const urls = await Promise.all(servers.map((s) => s.url));
  const router = await spawnRouter(redis.url);
  running.push({ kill: () => router.child.kill("SIGKILL") });
  await untilHealth(router, (h) => h.nodes.filter((n) => n.state === "READY").length === nodes);
  note("fleet up");
  return { servers, urls, router };
}

type RouterHealth = { redis: string; nodes: { node: string; url: string; state: string }[] };

async function untilHealth(router: Router, cond: (h: RouterHealth) => boolean, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const h = (await (await fetch(`${router.url}/health`)).json()) as RouterHealth;
    if (cond(h)) return;
    if (Date.now() - start > limitMs) throw new Error(`router health never matched: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait (a while at most) until a node has at least `n` requests live; then go on regardless. */
async function untilNodeHolds(nodeUrl: string, n: number, limitMs = 15_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < limitMs) {
    const h = (await (await fetch(`${nodeUrl}/health`)).json()) as { activeRequests: number };
    if (h.activeRequests >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A router counter summed over the series matching `labels`. */
async function metric(router: Router, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(" ").pop());
  return total;
}

/** One request through the official client, classified into exactly one outcome. */
async function one(client: OpenAI, i: number): Promise<Outcome> {
  const model = MODELS[i % MODELS.length]!;
  const maxTokens = 16 + (i % 4) * 8;
  const stream = i % 2 === 0;
  try {
    if (!stream) {
      const r =
        i % 4 === 1
          ? await client.completions.create({ model, prompt: `story ${i}`, max_tokens: maxTokens, temperature: 0 })
          : await client.chat.completions.create({ model, messages: [{ role: "user", content: `story ${i}` }], max_tokens: maxTokens, temperature: 0 });
      const finish = r.choices[0]?.finish_reason;
      return finish === "length" || finish === "stop" ? { kind: "complete" } : { kind: "wrong", detail: `finish ${finish}` };
    }
    let chunks = 0;
    let finish: string | null | undefined = null;
    try {
      const s = await client.chat.completions.create({ model, messages: [{ role: "user", content: `story ${i}` }], max_tokens: maxTokens, temperature: 0, stream: true });
      for await (const c of s) {
        chunks++;
        finish = c.choices[0]?.finish_reason ?? finish;
      }
    } catch (e) {
      if (chunks > 0)
        return e instanceof OpenAI.APIError && e.code === "node_failed"
          ? { kind: "node_failed", chunks }
          : { kind: "wrong", detail: `stream cut after ${chunks} chunks: ${String(e)}` };
      throw e;
    }
    return finish ? { kind: "complete" } : { kind: "wrong", detail: "stream ended without a finish_reason" };
  } catch (e) {
    if (e instanceof OpenAI.APIError && (e.status === 429 || e.status === 503)) return { kind: "refused", status: e.status, retryAfter: e.headers?.get("retry-after") ?? null };
    return { kind: "wrong", detail: String(e) };
  }
}

/** `total` requests, `concurrency` at a time; `midway` runs once `atDone` of them have ended. */
async function run(client: OpenAI, total: number, concurrency: number, atDone: number, midway: () => void | Promise<void>): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  let done = 0;
  let fired: Promise<void> | null = null;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      outcomes[i] = await one(client, i);
      if (++done === atDone) {
        note(`${done} done: the fault`);
        fired = Promise.resolve(midway());
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await fired;
  return outcomes;
}

function assertDefinite(outcomes: Outcome[]): void {
  const wrong = outcomes.filter((o) => o.kind === "wrong");
  assert.deepEqual(wrong, [], "every request ends in one definite outcome");
  for (const o of outcomes) if (o.kind === "refused") assert.ok(o.retryAfter !== null && Number(o.retryAfter) >= 1, `a ${o.status} carries Retry-After`);
}

/** Each test's own limit: three nodes start slowly on a busy 2-core machine. */
const TEST_TIMEOUT = { timeout: 600_000 };

const note = (msg: string) => {
  if (process.env.FLEET_DEBUG) process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
};

describe("fleet: 3 nodes + a router", () => {
  afterEach(async () => {
    for (const r of running.splice(0)) r.kill();
    await redis?.stop();
    redis = undefined;
  });
  after(() => {
    for (const r of running.splice(0)) r.kill();
  });

  it("a node killed mid-run: every request ends definitely, some are re-dispatched, the node leaves within its TTL", TEST_TIMEOUT, async () => {
    const { servers, urls, router } = await startFleet();
    const victim = new URL(urls[0]!).host;
    // Killed while it holds requests not started yet (more than a batch), so some of its
    // requests have had no byte out and must be re-sent; the started streams end node_failed.
    const outcomes = await run(router.client, 120, 24, 30, async () => {
      await untilNodeHolds(urls[0]!, 6);
      servers[0]!.child.kill("SIGKILL");
    });
    assertDefinite(outcomes);
    assert.equal(outcomes.length, 120);
    assert.ok((await metric(router, "pitcher_router_redispatched_total", { node: victim })) > 0, "some were re-dispatched");
    await untilHealth(router, (h) => !h.nodes.some((n) => n.node === victim), TTL_MS + 5_000);
  });

  it("a node frozen (SIGSTOP) mid-run: its requests go elsewhere or end with node_failed; none hangs", TEST_TIMEOUT, async () => {
    const { servers, urls, router } = await startFleet();
    const victim = new URL(urls[1]!).host;
    const outcomes = await run(router.client, 100, 12, 25, () => void servers[1]!.child.kill("SIGSTOP"));
    assertDefinite(outcomes);
    assert.ok(
      (await metric(router, "pitcher_router_redispatched_total", { node: victim })) + (await metric(router, "pitcher_router_failed_total", { node: victim })) > 0,
      "the frozen node's requests were taken back",
    );
    await untilHealth(router, (h) => !h.nodes.some((n) => n.node === victim && n.state === "READY"), TTL_MS + 5_000);
    servers[1]!.child.kill("SIGCONT");
  });

  it("a node drained (SIGTERM) mid-run: none of its requests reaches a client as an error, and it exits 0", TEST_TIMEOUT, async () => {
    const { servers, router } = await startFleet();
    const outcomes = await run(router.client, 100, 12, 25, () => void servers[2]!.child.kill("SIGTERM"));
    assertDefinite(outcomes);
    assert.deepEqual(
      outcomes.filter((o) => o.kind !== "complete"),
      [],
      "a drain hands queued requests back and finishes running ones: no client sees an error",
    );
    assert.equal(await servers[2]!.exited, 0);
  });

  it("Redis killed mid-run: routing goes on on the last view; a router restarted then serves at once", TEST_TIMEOUT, async () => {
    const { router } = await startFleet();
    const outcomes = await run(router.client, 40, 6, 10, () => redis!.stop());
    assertDefinite(outcomes);
    assert.deepEqual(
      outcomes.filter((o) => o.kind !== "complete"),
      [],
      "nodes keep serving and the router keeps its view",
    );
    await untilHealth(router, (h) => h.redis === "unreachable");
    // Redis back on its port; a new router (no state of its own) serves at once.
    redis = await startRedis(redis!.port);
    router.child.kill("SIGKILL");
    const fresh = await spawnRouter(redis.url);
    running.push({ kill: () => fresh.child.kill("SIGKILL") });
    await untilHealth(fresh, (h) => h.nodes.filter((n) => n.state === "READY").length === 3);
    // The union of the nodes' catalogs, with where each model is.
    const models = (await fresh.client.models.list()).data as unknown as { id: string; meta: { nodes: { node: string }[] } }[];
    assert.deepEqual(models.map((m) => m.id).sort(), MODELS);
    for (const m of models) assert.equal(m.meta.nodes.length, 3);
    const status = await runCli(["fleet", "--cluster", redis.url]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.stdout.match(/ READY /g)?.length, 3, status.stdout);
    assert.match(status.stdout, /predicted wait \d+ ms/);
    const again = await run(fresh.client, 12, 4, 0, () => {});
    assert.deepEqual(
      again.filter((o) => o.kind !== "complete"),
      [],
    );
  });
});
