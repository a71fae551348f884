/**
 * Soak (BENCHMARKS.md; issue 12): `--minutes` of mixed load over the embedded catalog in a
 * server process, with client disconnects, preemptions (the pool swaps between six models)
 * and a device worker killed (SIGKILL) every `--kill-every` minutes. Reported per
 * `--window` minutes: requests by outcome, deadline-SLO attainment (from /metrics), RSS of
 * the server and of the device workers; then the RSS slopes after the first window (target:
 * flat within noise) and the requests lost (target 0: no answer, a connection error we did
 * not cause, or a 5xx other than `device_failed` of a killed worker's own requests). Shed
 * requests (429, or 503 `slo_wait_exceeded`: the server said it is overloaded) count as
 * rejected, not lost. The catalog's embedding model is asked for embeddings.
 *
 *   node --import tsx bench/soak.ts --minutes 60 --rate 2 --kill-every 3
 *   node --import tsx bench/soak.ts --minutes 2 --window 1 --kill-every 1   # a smoke run
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { STAND_IN_CATALOG } from "../src/engine/gguf/standInCatalog.ts";
import { STAND_IN_IDS } from "../test/helpers.ts";
import { childPids, MB, rssBytes, slope } from "./processStats.ts";
import { startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--minutes <n>", "how long the load runs", "60")
  .option("--window <minutes>", "report window", "5")
  .option("--rate <req/s>", "Poisson arrival rate", "2")
  .option("--kill-every <minutes>", "SIGKILL one device worker this often (0: never)", "3")
  .option("--disconnect <share>", "share of streamed requests whose client hangs up after a few tokens", "0.1")
  .option("--sample <seconds>", "RSS sampling period", "15")
  .option("--seed <n>", "seed of the arrivals and choices", "5")
  .parse()
  .opts();
const MINUTES = Number(opts.minutes);
const WINDOW_MS = Number(opts.window) * 60_000;
const ANSWER_LIMIT_MS = 180_000;

// A small seeded generator (mulberry32): the same seed, the same requests.
let state = Number(opts.seed) >>> 0;
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
// Zipf(1.2) popularity over the catalog.
// The catalog's embedding models are asked for embeddings (they serve nothing else).
const EMBEDDERS = new Set(STAND_IN_CATALOG.filter((e) => "pooling" in e.shape && e.shape.pooling !== undefined).map((e) => e.id));
const weights = STAND_IN_IDS.map((_, i) => 1 / (i + 1) ** 1.2);
const pickModel = () => {
  let r = random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r <= 0) return STAND_IN_IDS[i]!;
  }
  return STAND_IN_IDS[0]!;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-soak-"));
const config = path.join(dir, "config.json");
fs.writeFileSync(config, JSON.stringify({}));
const server = await startServerProcess(config);

type Outcome = "ok" | "rejected" | "device_failed" | "disconnected" | "lost";
interface Window {
  counts: Record<Outcome, number>;
  met: number;
  missed: number;
  serverRss: number[];
  workersRss: number[];
  kills: number;
}
const newWindow = (): Window => ({ counts: { ok: 0, rejected: 0, device_failed: 0, disconnected: 0, lost: 0 }, met: 0, missed: 0, serverRss: [], workersRss: [], kills: 0 });
const windows: Window[] = [newWindow()];
const current = () => windows.at(-1)!;
const lostWhy: string[] = [];
const samples: { tMs: number; server: number; workers: number }[] = [];
// Per worker process (a killed worker's replacement is a new pid): its own RSS series.
const perWorker = new Map<number, { tMs: number; rss: number }[]>();

async function oneRequest(): Promise<Outcome> {
  const model = pickModel();
  if (EMBEDDERS.has(model)) return embed(model);
  const stream = random() < 0.7;
  const hangUpAfter = stream && random() < Number(opts.disconnect) ? 1 + Math.floor(random() * 4) : 0;
  const chat = random() < 0.6;
  const maxTokens = 8 + Math.floor(random() * 56);
  const body = chat
    ? { model, messages: [{ role: "user", content: "Tell me a story about a pool of devices." }], max_tokens: maxTokens, stream }
    : { model, prompt: "Once upon a time, a pool of devices", max_tokens: maxTokens, stream };
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error("no answer in time")), ANSWER_LIMIT_MS);
  try {
    const res = await fetch(`${server.url}/v1/${chat ? "chat/completions" : "completions"}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: abort.signal,
    });
    // Shed by the server, saying so: overload (429) or a wait past the late-wait cap (503).
    if (res.status === 429 || res.status === 503) {
      const text = await res.text();
      if (res.status === 429 || text.includes('"slo_wait_exceeded"')) return "rejected";
      lostWhy.push(`${res.status}: ${text.slice(-200)}`);
      return "lost";
    }
    let text = "";
    let chunks = 0;
    const decoder = new TextDecoder();
    for await (const bytes of res.body!) {
      text += decoder.decode(bytes, { stream: true });
      chunks = text.split("\n\n").length - 1;
      if (hangUpAfter > 0 && chunks >= hangUpAfter) {
        abort.abort(new Error("hung up on purpose"));
        return "disconnected";
      }
    }
    if (text.includes('"device_failed"')) return "device_failed";
    if (res.status === 200 && (!stream || text.endsWith("data: [DONE]\n\n")) && !text.includes('"error"')) return "ok";
    lostWhy.push(`${res.status}: ${text.slice(-200)}`);
    return "lost";
  } catch (e) {
    if (hangUpAfter > 0 && abort.signal.aborted && String(abort.signal.reason).includes("on purpose")) return "disconnected";
    lostWhy.push(`${String((e as { cause?: unknown }).cause ?? e)} (${model}, stream ${stream}, at ${new Date().toISOString()})`);
    return "lost";
  } finally {
    clearTimeout(timer);
  }
}

async function embed(model: string): Promise<Outcome> {
  try {
    const res = await fetch(`${server.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, input: ["a pool of devices", "Once upon a time"] }),
      signal: AbortSignal.timeout(ANSWER_LIMIT_MS),
    });
    const text = await res.text();
    if (res.status === 429 || (res.status === 503 && text.includes('"slo_wait_exceeded"'))) return "rejected";
    if (text.includes('"device_failed"')) return "device_failed";
    if (res.status === 200 && (JSON.parse(text) as { data?: unknown[] }).data?.length === 2) return "ok";
    lostWhy.push(`${res.status}: ${text.slice(-200)} (${model})`);
    return "lost";
  } catch (e) {
    lostWhy.push(`${String((e as { cause?: unknown }).cause ?? e)} (${model}, embeddings, at ${new Date().toISOString()})`);
    return "lost";
  }
}

async function scrapeSlo(): Promise<{ met: number; missed: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let met = 0;
  let missed = 0;
  for (const line of text.split("\n")) {
    const m = /^pitcher_slo_requests_total\{[^}]*result="(met|missed)"[^}]*\} (\S+)$/.exec(line);
    if (m?.[1] === "met") met += Number(m[2]);
    else if (m?.[1] === "missed") missed += Number(m[2]);
  }
  return { met, missed };
}

const startMs = performance.now();
const endMs = startMs + MINUTES * 60_000;
const inFlight = new Set<Promise<void>>();
let slo = await scrapeSlo();

const sampler = setInterval(() => {
  const s = rssBytes(server.pid) ?? 0;
  const tMs = performance.now() - startMs;
  let w = 0;
  for (const pid of childPids(server.pid)) {
    const rss = rssBytes(pid) ?? 0;
    w += rss;
    if (!perWorker.has(pid)) perWorker.set(pid, []);
    perWorker.get(pid)!.push({ tMs, rss });
  }
  samples.push({ tMs: performance.now() - startMs, server: s, workers: w });
  current().serverRss.push(s);
  current().workersRss.push(w);
}, Number(opts.sample) * 1000);
const killEveryMs = Number(opts.killEvery) * 60_000;
const killer =
  killEveryMs > 0
    ? setInterval(() => {
        const workers = childPids(server.pid);
        if (workers.length === 0) return;
        process.kill(workers[Math.floor(random() * workers.length)]!, "SIGKILL");
        current().kills++;
      }, killEveryMs)
    : null;
const windowTimer = setInterval(async () => {
  const now = await scrapeSlo();
  Object.assign(current(), { met: now.met - slo.met, missed: now.missed - slo.missed });
  slo = now;
  // A line per window as it ends, so a run cut short still says what it saw.
  const w = current();
  console.log(
    `window ${windows.length} (${new Date().toISOString()}): ${JSON.stringify(w.counts)} kills ${w.kills} met ${w.met} missed ${w.missed} server RSS ${((w.serverRss.at(-1) ?? 0) / MB).toFixed(0)} MB workers ${((w.workersRss.at(-1) ?? 0) / MB).toFixed(0)} MB`,
  );
  for (const why of lostWhy.splice(0)) console.log(`  lost: ${why}`);
  windows.push(newWindow());
}, WINDOW_MS);

// Poisson arrivals until the end; then wait for what is in flight.
while (performance.now() < endMs) {
  const p: Promise<void> = oneRequest().then((o) => {
    current().counts[o]++;
    inFlight.delete(p);
  });
  inFlight.add(p);
  await new Promise((r) => setTimeout(r, (-Math.log(1 - random()) / Number(opts.rate)) * 1000));
}
await Promise.all(inFlight);
clearInterval(windowTimer);
clearInterval(sampler);
if (killer) clearInterval(killer);
const last = await scrapeSlo();
Object.assign(current(), { met: last.met - slo.met, missed: last.missed - slo.missed });
await server.stop();
fs.rmSync(dir, { recursive: true, force: true });

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
console.log(`${MINUTES} min at ${opts.rate} req/s over the embedded catalog; a worker killed every ${opts.killEvery} min; ${opts.disconnect} of streams hung up\n`);
console.log("| window | ok | rejected | device_failed | disconnected | lost | kills | attainment | server RSS (MB) | workers RSS (MB) |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
windows.forEach((w, i) => {
  const att = w.met + w.missed > 0 ? (w.met / (w.met + w.missed)).toFixed(3) : "-";
  const c = w.counts;
  console.log(
    `| ${i + 1} | ${c.ok} | ${c.rejected} | ${c.device_failed} | ${c.disconnected} | ${c.lost} | ${w.kills} | ${att} | ${(mean(w.serverRss) / MB).toFixed(0)} | ${(mean(w.workersRss) / MB).toFixed(0)} |`,
  );
});
const warm = samples.filter((s) => s.tMs >= Math.min(WINDOW_MS, (MINUTES * 60_000) / 2));
const perHour = (ys: number[]) =>
  (
    slope(
      warm.map((s) => s.tMs / 3_600_000),
      ys,
    ) / MB
  ).toFixed(1);
console.log(`\nRSS slope after warm-up: server ${perHour(warm.map((s) => s.server))} MB/h, workers together ${perHour(warm.map((s) => s.workers))} MB/h`);
// Each worker process that lived through at least two windows after warm-up: its own slope.
for (const [pid, series] of perWorker) {
  const after = series.filter((x) => x.tMs >= Math.min(WINDOW_MS, (MINUTES * 60_000) / 2));
  if (after.length < 2 || after.at(-1)!.tMs - after[0]!.tMs < 2 * WINDOW_MS) continue;
  const perH = slope(
    after.map((x) => x.tMs / 3_600_000),
    after.map((x) => x.rss),
  );
  console.log(
    `worker ${pid}: ${((after.at(-1)!.tMs - after[0]!.tMs) / 60_000).toFixed(0)} min after warm-up, RSS ${(after[0]!.rss / MB).toFixed(0)} -> ${(after.at(-1)!.rss / MB).toFixed(0)} MB, slope ${(perH / MB).toFixed(1)} MB/h`,
  );
}
const lost = windows.reduce((a, w) => a + w.counts.lost, 0);
console.log(`requests lost: ${lost}${lostWhy.length ? `\n${lostWhy.join("\n")}` : ""}`);
