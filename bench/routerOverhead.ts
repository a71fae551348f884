/**
 * Router overhead (BENCHMARKS.md, issue 13): one node (`pitcher serve --cluster`) and one
 * router (`pitcher route`) over a throwaway redis-server; the same greedy streamed request
 * alternately sent to the node directly and through the router. Prints single-stream
 * tokens/s side by side (target: through the router >= 0.97 of direct) and the TTFT the
 * router adds (p50, p99).
 *
 *   node --import tsx bench/routerOverhead.ts --tokens 256 --rounds 20
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { startRedis } from "../test/redisServer.ts";
import { ROOT } from "./serverProcess.ts";

const opts = new Command()
  .option("--model <id>", "stand-in model", "llama-58m-q8-a")
  .option("--tokens <n>", "tokens per request", "256")
  .option("--rounds <n>", "alternations", "20")
  .parse()
  .opts();
const N = Number(opts.tokens);
const ROUNDS = Number(opts.rounds);

function startProcess(args: string[]): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1]!, stop: () => child.kill("SIGKILL") });
    });
    child.on("exit", () => reject(new Error(`${args[0]} exited: ${err}`)));
  });
}

/** One streamed request: time to first token and tokens/s from the first token to the last (ms, tok/s). */
async function oneStream(url: string): Promise<{ ttftMs: number; tokensPerS: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: opts.model, prompt: "Once upon a time", max_tokens: N, temperature: 0, stream: true }),
  });
  const reader = res.body!.getReader();
  let first = 0;
  let last = 0;
  let chunks = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const now = performance.now();
    const n = (
      Buffer.from(value)
        .toString("utf8")
        .match(/"text"/g) ?? []
    ).length;
    if (n > 0 && first === 0) first = now;
    if (n > 0) last = now;
    chunks += n;
  }
  return { ttftMs: first - t0, tokensPerS: (chunks - 1) / ((last - first) / 1000) };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const median = (xs: number[]) => pct(xs, 0.5);

const redis = await startRedis();
const file = ensureStandIns(path.join(ROOT, ".pitcher-cache")).find((m) => m.id === opts.model)!.path;
const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-bench-")), "pitcher.yaml");
fs.writeFileSync(cfg, `scheduler: { calibrate: false }\ndevices: { count: 1 }\nmodels:\n  - id: ${opts.model}\n    path: ${file}\n`);
const node = await startProcess(["serve", "--config", cfg, "--port", "0", "--no-request-log", "--cluster", redis.url]);
const router = await startProcess(["route", "--cluster", redis.url, "--port", "0"]);
try {
  await oneStream(node.url); // warm: the model is loaded
  const direct: { ttftMs: number; tokensPerS: number }[] = [];
  const routed: { ttftMs: number; tokensPerS: number }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    direct.push(await oneStream(node.url));
    routed.push(await oneStream(router.url));
  }
  const d = median(direct.map((x) => x.tokensPerS));
  const r = median(routed.map((x) => x.tokensPerS));
  const added = routed.map((x, i) => x.ttftMs - direct[i]!.ttftMs);
  console.log(`| direct (tok/s, median of ${ROUNDS}) | through the router | ratio | TTFT added p50 | p99 |`);
  console.log(`|---|---|---|---|---|`);
  console.log(`| ${d.toFixed(1)} | ${r.toFixed(1)} | ${((100 * r) / d).toFixed(1)}% | ${pct(added, 0.5).toFixed(1)} ms | ${pct(added, 0.99).toFixed(1)} ms |`);
} finally {
  router.stop();
  node.stop();
  await redis.stop();
}
