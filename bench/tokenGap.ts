/**
 * A stream's worst token gap while large prompts arrive (BENCHMARKS.md; issue: "eight 1 MB
 * prompts stretched a concurrent stream's worst gap from 232 to 1,046 ms"). For each mode,
 * prompts tokenized on worker threads (`server.tokenizerThreads: 2`) and on the event loop
 * (`0`), a server process streams one request alone, then the same request while eight
 * 1 MB prompts (over the context, so refused after tokenizing) arrive mid-stream. Target:
 * worst gap with the prompts ≤ 1.2 × alone, with worker threads.
 *
 *   node --import tsx bench/tokenGap.ts --tokens 200 --big 8 --big-bytes 1000000 --rounds 2
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--model <id>", "stand-in model", "llama-5m-q8")
  .option("--tokens <n>", "tokens of the measured stream", "200")
  .option("--big <n>", "large prompts sent while it streams", "8")
  .option("--big-bytes <n>", "bytes of each large prompt", "1000000")
  .option("--rounds <n>", "measurements per case (the worst gap of each is kept; the median is reported)", "2")
  .option("--modes <list>", "tokenizerThreads values to compare", "2,0")
  .parse()
  .opts();
const CACHE = path.resolve(import.meta.dirname, "..", ".pitcher-cache");
const file = ensureStandIns(CACHE).find((m) => m.id === opts.model)!.path;
const TOKENS = Number(opts.tokens);
const BIG = Number(opts.big);
const BIG_BYTES = Number(opts.bigBytes);

/** Streams one completion; calls `midway` once a quarter of its tokens arrived; the worst gap between chunks after the first (ms). */
async function streamWorstGap(url: string, midway?: () => void): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt: "Once upon a time", max_tokens: TOKENS, temperature: 0, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`stream: ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffered = "";
  let chunks = 0;
  let last = 0;
  let worst = 0;
  for await (const bytes of res.body) {
    buffered += decoder.decode(bytes, { stream: true });
    const events = buffered.split("\n\n");
    buffered = events.pop()!;
    for (const e of events) {
      if (!e.startsWith("data: {")) continue;
      const now = performance.now();
      if (chunks > 0) worst = Math.max(worst, now - last);
      last = now;
      chunks++;
      if (chunks === Math.ceil(TOKENS / 4)) midway?.();
    }
  }
  return worst;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const bigBody = JSON.stringify({ model: "m", prompt: "Once upon a time there was a pool. ".repeat(Math.ceil(BIG_BYTES / 35)).slice(0, BIG_BYTES), max_tokens: 1 });
const rows: string[] = [];
for (const threads of String(opts.modes).split(",").map(Number)) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-gap-"));
  const config = path.join(dir, "config.json");
  fs.writeFileSync(
    config,
    JSON.stringify({
      server: { bodyLimitBytes: 2 * BIG_BYTES + 4096, maxPromptBytes: 2 * BIG_BYTES, tokenizerThreads: threads },
      devices: { count: 1 },
      scheduler: { calibrate: false, admissionTtftFactor: 0 },
      models: [{ id: "m", path: file }],
    }),
  );
  const server = await startServerProcess(config);
  try {
    await streamWorstGap(server.url); // warm-up: model loaded
    const alone: number[] = [];
    const loaded: number[] = [];
    const statuses = new Map<number, number>();
    for (let r = 0; r < Number(opts.rounds); r++) {
      alone.push(await streamWorstGap(server.url));
      let bigs: Promise<void>[] = [];
      const send = () => {
        bigs = Array.from({ length: BIG }, async () => {
          const res = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: bigBody });
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        });
      };
      loaded.push(await streamWorstGap(server.url, send));
      await Promise.all(bigs);
    }
    const a = median(alone);
    const l = median(loaded);
    rows.push(
      `| ${threads > 0 ? `worker threads (${threads})` : "event loop"} | ${a.toFixed(0)} | ${l.toFixed(0)} | ${(l / a).toFixed(2)}× | ${[...statuses].map(([s, n]) => `${n}×${s}`).join(" ")} |`,
    );
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`stream of ${TOKENS} tokens on ${opts.model}; ${BIG} prompts of ${BIG_BYTES} bytes sent a quarter of the way in; median of ${opts.rounds} rounds\n`);
console.log("| prompts tokenized on | worst gap alone (ms) | worst gap with the prompts (ms) | ratio | their answers |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(r);
