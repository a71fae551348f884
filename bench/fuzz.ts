/**
 * Hostile requests against a server under normal load (BENCHMARKS.md; issue 12): the fuzz
 * suite's generators (test/fuzz/requests.ts) send `--requests` malformed, oversized, unicode,
 * deeply nested and mistyped requests over sockets while `--load` well-behaved clients
 * stream chat completions. Counted: crashes, 5xx, answers not in the OpenAI shape, hangs,
 * connection errors, lost in-flight requests of the well-behaved clients (target 0 of
 * each), and the RSS of the server and its device workers before and after.
 *
 *   node --import tsx bench/fuzz.ts --requests 10000 --concurrency 16 --load 4
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import fc from "fast-check";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { answerProblem, describeCase, fuzzCase } from "../test/fuzz/requests.ts";
import { childPids, MB, rssBytes } from "./processStats.ts";
import { startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--requests <n>", "hostile requests", "10000")
  .option("--concurrency <n>", "hostile requests in flight", "16")
  .option("--load <n>", "well-behaved streaming clients running meanwhile", "4")
  .option("--seed <n>", "fast-check seed", "12")
  .option("--hang-ms <ms>", "an answer later than this is a hang", "60000")
  .option("--passes <n>", "send the same cases this many times, RSS read after each (growth that repeats is a leak; once is a heap settling)", "1")
  .option("--url <url>", "a server already running (its models m and n as below; no RSS then)")
  .parse()
  .opts();
const CACHE = path.resolve(import.meta.dirname, "..", ".pitcher-cache");
const paths = Object.fromEntries(ensureStandIns(CACHE).map((m) => [m.id, m.path]));
const HANG_MS = Number(opts.hangMs);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-fuzz-"));
const config = path.join(dir, "config.json");
fs.writeFileSync(
  config,
  JSON.stringify({
    devices: { count: 2 },
    scheduler: { admissionTtftFactor: 0 },
    models: [
      // A small context bounds every answer: a hostile body that leaves max_tokens out (or
      // null) gets the context's room, and 250-token answers, two choices each, 16 at a time,
      // are an overload of their own on a small machine, not the hostile requests under test.
      { id: "m", path: paths["llama-5m-q8"], contextTokens: 96 },
      { id: "n", path: paths["llama-16m-f16"], contextTokens: 96 },
    ],
  }),
);
const server = opts.url ? { url: String(opts.url), pid: 0, stop: async () => {} } : await startServerProcess(config);
const memory = () => (server.pid ? { server: rssBytes(server.pid) ?? 0, workers: childPids(server.pid).map((p) => rssBytes(p) ?? 0) } : { server: 0, workers: [] });

const lostWhy: string[] = [];
/** One well-behaved stream: "ok" when it ended with [DONE] after a 200; "shed" when the server said it is overloaded (429, 503 slo_wait_exceeded). */
async function wellBehaved(model: string): Promise<"ok" | "shed" | "lost"> {
  const t0 = performance.now();
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Tell me a story." }], max_tokens: 24, stream: true }),
      signal: AbortSignal.timeout(HANG_MS),
    });
    const text = await res.text();
    if (res.status === 429 || (res.status === 503 && text.includes('"slo_wait_exceeded"'))) return "shed";
    const ok = res.status === 200 && text.endsWith("data: [DONE]\n\n") && !text.includes('"error"');
    if (!ok) lostWhy.push(`${res.status}: ${text.slice(-300)}`);
    return ok ? "ok" : "lost";
  } catch (e) {
    lostWhy.push(`${String(e)} (${String((e as { cause?: unknown }).cause)}) after ${(performance.now() - t0).toFixed(0)} ms, at ${new Date().toISOString()}`);
    return "lost";
  }
}

// Generated before any client runs: building the cases blocks this process for seconds (tens
// of seconds on a busy machine), and a client whose event loop stalls longer than the
// server's keep-alive timeout sends its next request onto a connection the server has closed
// ("other side closed"): a lost stream that is the benchmark's doing, not the server's.
const cases = fc.sample(fuzzCase("m"), { numRuns: Number(opts.requests), seed: Number(opts.seed) });
for (const m of ["m", "n"]) await wellBehaved(m); // models loaded once before measuring
const before = memory();

let fuzzing = true;
const load = { ok: 0, shed: 0, lost: 0 };
const loadClients = Array.from({ length: Number(opts.load) }, async (_, i) => {
  while (fuzzing) load[await wellBehaved(i % 2 === 0 ? "m" : "n")]++;
});

const counts = { answered: 0, status5xx: 0, malformed: 0, hangs: 0, connectionErrors: 0 };
const examples: string[] = [];
const startedMs = performance.now();
const afterPass: ReturnType<typeof memory>[] = [];
for (let pass = 0; pass < Number(opts.passes); pass++) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Number(opts.concurrency) }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        try {
          const res = await fetch(server.url + c.route, {
            method: "POST",
            headers: c.contentType === null ? {} : { "content-type": c.contentType },
            body: c.payload,
            signal: AbortSignal.timeout(HANG_MS),
          });
          const body = await res.text();
          counts.answered++;
          if (res.status >= 500) counts.status5xx++;
          const problem = answerProblem(res.status, res.headers.get("content-type") ?? undefined, body);
          if (problem) {
            counts.malformed++;
            if (examples.length < 5) examples.push(`${problem}\n  for ${describeCase(c)}`);
          }
        } catch (e) {
          if ((e as Error).name === "TimeoutError") counts.hangs++;
          else counts.connectionErrors++;
          if (examples.length < 5) examples.push(`${(e as Error).message} (${String((e as { cause?: unknown }).cause)})\n  for ${describeCase(c)}`);
        }
      }
    }),
  );
  afterPass.push(memory());
}
const seconds = (performance.now() - startedMs) / 1000;
fuzzing = false;
await Promise.all(loadClients);
await new Promise((r) => setTimeout(r, 2000));
const after = memory();
const httpLines = await fetch(`${server.url}/metrics`)
  .then((r) => r.text())
  .then((t) => t.split("\n").filter((l) => l.startsWith("pitcher_http_responses_total") || l.startsWith("pitcher_requests_total")))
  .catch(() => []);
const alive = await fetch(`${server.url}/health`)
  .then((r) => r.status === 200)
  .catch(() => false);
await server.stop();
fs.rmSync(dir, { recursive: true, force: true });

const fmt = (b: number) => `${(b / MB).toFixed(0)} MB`;
console.log(
  `${cases.length * Number(opts.passes)} hostile requests (${opts.passes} × ${cases.length}, seed ${opts.seed}, ${opts.concurrency} in flight) in ${seconds.toFixed(0)} s, ${opts.load} streaming clients meanwhile\n`,
);
console.log("| measure | value | target |");
console.log("|---|---|---|");
console.log(`| server crashed | ${alive ? "no" : "yes"} | no |`);
console.log(`| 5xx answers | ${counts.status5xx} | 0 |`);
console.log(`| answers not a success or a 4xx in the OpenAI error body | ${counts.malformed} | 0 |`);
console.log(`| hangs (no answer in ${HANG_MS} ms) | ${counts.hangs} | 0 |`);
console.log(`| connection errors | ${counts.connectionErrors} | 0 |`);
console.log(`| well-behaved streams lost | ${load.lost} of ${load.ok + load.shed + load.lost} | 0 |`);
console.log(`| well-behaved streams shed (429, 503 slo_wait_exceeded: the server said it is overloaded) | ${load.shed} | - |`);
console.log(`| server RSS before → after | ${fmt(before.server)} → ${fmt(after.server)} | flat |`);
console.log(`| device workers' RSS before → after | ${before.workers.map(fmt).join(", ")} → ${after.workers.map(fmt).join(", ")} | flat |`);
if (afterPass.length > 1) console.log(`| server RSS after each pass | ${afterPass.map((m) => fmt(m.server)).join(" → ")} | flat |`);
if (process.env.FUZZ_VERBOSE) console.log(httpLines.join("\n"));
if (lostWhy.length > 0) console.log(`\nlost streams:\n${lostWhy.slice(0, 5).join("\n")}`);
if (examples.length > 0) console.log(`\nfirst problems:\n${examples.join("\n")}`);
process.exit(alive && counts.status5xx + counts.malformed + counts.hangs + counts.connectionErrors + load.lost === 0 ? 0 : 1);
