// The fleet on a Redis that asks for a password, and on one that speaks TLS only
// (`rediss://`, a self-signed certificate made at test time): a real `pitcher serve
// --cluster` node and a real `pitcher route`, one request through the official client,
// and `pitcher fleet`. Wrong credentials fail start-up with the reason, never the password.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, it } from "node:test";
import OpenAI from "openai";
import { CACHE_DIR, ROOT, runCli, spawnServe, standInPaths, writeConfig } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redisServer.ts";

const PASSWORD = "s3cret/p@ss";
const running: ChildProcess[] = [];
let redis: TestRedis | undefined;

function spawnRouter(args: string[]): Promise<{ url: string; client: OpenAI }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "route", ...args, "--port", "0"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      const m = /listening on (\S+)/.exec(String(d));
      if (m) resolve({ url: m[1]!, client: new OpenAI({ baseURL: `${m[1]}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }) });
    });
    child.on("exit", () => reject(new Error(`router exited: ${err}`)));
  });
}

/** One node of one device serving model `a`; `cluster` is its config section (YAML flow map). */
async function startNode(cluster: string, dir?: string, args: string[] = []): Promise<string> {
  const cfg = writeConfig(
    `cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false }\ndevices: { count: 1 }\ncluster: ${cluster}\nmodels:\n  - { id: a, path: ${standInPaths()["llama-5m-q8"]} }\n`,
  );
  if (dir) for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(path.dirname(cfg), f));
  const node = spawnServe(["--config", cfg, "--port", "0", "--no-request-log", ...args]);
  running.push(node.child);
  return node.url;
}

/** The router lists the node READY, then one streamed and one plain request go through it. */
async function throughRouter(router: { url: string; client: OpenAI }): Promise<void> {
  for (let i = 0; ; i++) {
    const h = (await (await fetch(`${router.url}/health`)).json()) as { redis: string; nodes: { state: string }[] };
    if (h.redis === "reachable" && h.nodes.some((n) => n.state === "READY")) break;
    assert.ok(i < 400, `the router never saw the node: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await router.client.chat.completions.create({ model: "a", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0 });
  assert.ok(["length", "stop"].includes(r.choices[0]!.finish_reason));
  let chunks = 0;
  for await (const _ of await router.client.completions.create({ model: "a", prompt: "Once", max_tokens: 8, temperature: 0, stream: true })) chunks++;
  assert.ok(chunks > 0);
}

/** The router dashboard's first pushed state. */
async function dashboardState(routerUrl: string): Promise<{ nodes: { state: string; models: { id: string; scored: number; attainment: number | null }[] }[] }> {
  const res = await fetch(`${routerUrl}/dashboard/events`);
  const reader = res.body!.getReader();
  let raw = "";
  while (!raw.includes("\n\n")) raw += new TextDecoder().decode((await reader.read()).value);
  await reader.cancel();
  const first = raw.slice(0, raw.indexOf("\n\n"));
  return JSON.parse(first.slice(first.indexOf("data: ") + 6));
}

afterEach(async () => {
  for (const c of running.splice(0)) c.kill("SIGKILL");
  await redis?.stop();
  redis = undefined;
});

const TIMEOUT = { timeout: 300_000 };

describe("fleet on a Redis with a password", () => {
  it("a password in the URL works for nodes, routers and `pitcher fleet`; a wrong one fails with the reason, redacted", TIMEOUT, async () => {
    redis = await startRedis({ password: PASSWORD });
    assert.match(redis.url, /^redis:\/\/:s3cret%2Fp%40ss@127\.0\.0\.1:\d+$/);
    // The URL given on the command line, over the config's.
    await startNode(`{ url: "redis://127.0.0.1:1" }`, undefined, ["--cluster", redis.url]);
    const router = await spawnRouter(["--cluster", redis.url]);
    await throughRouter(router);
    // The node publishes its last minute's SLO results; the router's dashboard shows them.
    for (let i = 0; ; i++) {
      const a = (await dashboardState(router.url)).nodes[0]?.models.find((m) => m.id === "a");
      if (a && a.scored >= 2) {
        assert.ok(a.attainment !== null && a.attainment >= 0 && a.attainment <= 1);
        break;
      }
      assert.ok(i < 100, `the node's record never showed its scored requests: ${JSON.stringify(a)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const status = await runCli(["fleet", "--cluster", redis.url]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, / READY /);

    const wrong = await runCli(["fleet", "--cluster", `redis://:not-it@127.0.0.1:${redis.port}`]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /WRONGPASS/);
    assert.match(wrong.stderr, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
    assert.doesNotMatch(wrong.stderr, /not-it/);
    const none = await runCli(["fleet", "--cluster", `redis://127.0.0.1:${redis.port}`]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /NOAUTH/);
  });
});

describe("fleet on a TLS-only Redis (rediss://)", () => {
  it("with the CA given (cluster.tlsCaFile, --cluster-ca) nodes, routers and `pitcher fleet` work; without it the certificate is refused", TIMEOUT, async () => {
    redis = await startRedis({ tls: true, password: PASSWORD });
    assert.match(redis.url, /^rediss:\/\//);
    // The CA as a file next to the config, named relative to it.
    const caDir = fs.mkdtempSync(path.join(path.dirname(redis.caFile!), "ca-"));
    fs.copyFileSync(redis.caFile!, path.join(caDir, "redis-ca.pem"));
    await startNode(`{ url: "${redis.url}", tlsCaFile: redis-ca.pem }`, caDir);
    await throughRouter(await spawnRouter(["--cluster", redis.url, "--cluster-ca", redis.caFile!]));
    const status = await runCli(["fleet", "--cluster", redis.url, "--cluster-ca", redis.caFile!]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, / READY /);

    const untrusted = await runCli(["fleet", "--cluster", redis.url]);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /self-signed certificate/);
    const plain = await runCli(["fleet", "--cluster", redis.url.replace("rediss://", "redis://"), "--cluster-ca", redis.caFile!]);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /tlsCaFile is for rediss:\/\/ URLs/);
  });
});
