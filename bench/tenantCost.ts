/**
 * What API keys and limits add to a request, through HTTP (BENCHMARKS.md § 8): the same
 * trivial request (stories260K, a 5-token prompt, max_tokens 1, not streamed) sent in turn to
 * three servers that differ only in `auth`: none, keys only, and keys with requests and tokens
 * per minute and a token budget (limits far above what the run uses). One request at a time,
 * the three alternating, so the machine's load falls on all three alike. `--fleet` sends the
 * same through a router: per mode a redis-server on a free loopback port, one
 * `pitcher serve --cluster` node with the keys in its configuration, and one `pitcher route`.
 *
 *   nice -n 19 node --import tsx bench/tenantCost.ts --requests 400 [--fleet]
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { startRedis, type TestRedis } from "../test/redisServer.ts";
import { ROOT } from "./serverProcess.ts";

const opts = new Command()
  .option("--requests <n>", "requests timed per mode", "400")
  .option("--warmup <n>", "requests per mode before timing", "20")
  .option("--keys <n>", "keys in the configuration (the request's is the last)", "10")
  .option("--fleet", "through a router and one cluster node instead of one plain node")
  .option("--start-order <list>", "the order the servers start in (a check that start order does not show as a cost)", "open,keys,limits")
  .parse()
  .opts();
const N = Number(opts.requests);
const STORIES = path.resolve(ROOT, "../shared/models/stories260K.gguf");
const KEY_COUNT = Math.max(1, Number(opts.keys));
const MY_KEY = `sk-bench-${KEY_COUNT - 1}-0123456789`;

type Mode = "open" | "keys" | "limits";
const MODES: Mode[] = ["open", "keys", "limits"];

function auth(mode: Mode): unknown {
  if (mode === "open") return undefined;
  const limits = mode === "limits" ? { rpm: 1_000_000, tpm: 1_000_000_000, budget: { tokens: 1_000_000_000, period: "month" } } : {};
  return { keys: Array.from({ length: KEY_COUNT }, (_, i) => ({ name: `k${i}`, key: `sk-bench-${i}-0123456789`, ...limits })) };
}

const children: (() => void)[] = [];
function startProcess(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.push(() => child.kill("SIGKILL"));
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", () => reject(new Error(`${args[0]} exited: ${err}`)));
  });
}

/** A server for the mode; with --fleet, the router in front of a cluster node. */
async function start(mode: Mode, redis: TestRedis | undefined): Promise<string> {
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-cost-")), "pitcher.json");
  const a = auth(mode);
  fs.writeFileSync(cfg, JSON.stringify({ scheduler: { calibrate: false }, devices: { count: 1 }, models: [{ id: "stories", path: STORIES }], ...(a ? { auth: a } : {}) }));
  const node = await startProcess(["serve", "--config", cfg, "--port", "0", "--no-request-log", ...(redis ? ["--cluster", redis.url] : [])]);
  return redis ? startProcess(["route", "--cluster", redis.url, "--port", "0"]) : node;
}

async function once(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${MY_KEY}` },
    body: JSON.stringify({ model: "stories", prompt: "Once upon a time", max_tokens: 1, temperature: 0 }),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${body}`);
  return performance.now() - t0;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!;

const redises: TestRedis[] = [];
try {
  const urls = new Map<Mode, string>();
  for (const mode of String(opts.startOrder).split(",") as Mode[]) {
    if (!MODES.includes(mode)) throw new Error(`--start-order: open, keys, limits, not ${mode}`);
    const redis = opts.fleet ? await startRedis() : undefined;
    if (redis) redises.push(redis);
    urls.set(mode, await start(mode, redis));
  }
  // A router learns its node from Redis: the first requests may find none yet.
  for (const url of urls.values())
    for (let i = 0; ; i++) {
      try {
        await once(url);
        break;
      } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  for (let i = 0; i < Number(opts.warmup); i++) for (const url of urls.values()) await once(url);
  const times = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  for (let i = 0; i < N; i++) {
    // Rotate which mode goes first, so no mode always follows another.
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(i + k) % MODES.length]!;
      times.get(mode)!.push(await once(urls.get(mode)!));
    }
  }
  const open = times.get("open")!;
  console.log(`${opts.fleet ? "through a router (one cluster node)" : "one node"}, ${KEY_COUNT} keys, ${N} requests per mode, max_tokens 1`);
  console.log("| auth | p50 | p99 | p50 added | p99 added |");
  console.log("|---|---|---|---|---|");
  for (const mode of MODES) {
    const t = times.get(mode)!;
    const added = (p: number) => (mode === "open" ? "–" : `${(pct(t, p) - pct(open, p)).toFixed(2)} ms`);
    console.log(`| ${mode} | ${pct(t, 0.5).toFixed(2)} ms | ${pct(t, 0.99).toFixed(2)} ms | ${added(0.5)} | ${added(0.99)} |`);
  }
} finally {
  for (const stop of children) stop();
  for (const r of redises) await r.stop();
}
