/**
 * Overhead (BENCHMARKS.md): decode tokens/s of one request on one model through Pitcher
 * (HTTP, scheduler, device worker process) versus a plain node-llama-cpp loop over the same
 * file and thread count, alternated in one run.
 *
 *   node --import tsx bench/overhead.ts --tokens 256 --rounds 3
 *   node --import tsx bench/overhead.ts --file big.gguf --gpu cuda --memory 10GB   # any GGUF, on a GPU (bench/gpu.sh)
 */
import { startServerProcess } from "./serverProcess.ts";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { ensureStandIns } from "../src/engine/resolveModels.ts";

const opts = new Command()
  .option("--model <id>", "stand-in model", "llama-58m-q8-a")
  .option("--tokens <n>", "tokens per run", "256")
  .option("--rounds <n>", "alternations", "3")
  .option("--idle-slice <ms>", "scheduler.idleDecodeSliceMs (default: the server's)")
  .option("--file <gguf>", "a model file instead of the stand-in --model")
  .option("--gpu <kind>", "false (CPU), cuda, vulkan, metal or auto: both sides", "false")
  .option("--memory <size>", "the Pitcher device's memory budget (default: the server's)")
  .parse()
  .opts();
const CACHE = path.resolve(import.meta.dirname, "..", ".pitcher-cache");
const file = opts.file ? path.resolve(opts.file) : ensureStandIns(CACHE).find((m) => m.id === opts.model)!.path;
const gpu = opts.gpu === "false" ? false : (opts.gpu as "cuda" | "vulkan" | "metal" | "auto");
const N = Number(opts.tokens);
const PROMPT = "Once upon a time, a pool of devices served many models";

// The plain loop: one context, one sequence, greedy, one thread (what the worker does, minus everything else).
const llama = await getLlama({ build: "never", gpu, maxThreads: 1, logLevel: LlamaLogLevel.error, skipDownload: true });
if (gpu && llama.gpu === false) throw new Error(`--gpu ${gpu}: node-llama-cpp found no usable ${gpu} build`);
const model = await llama.loadModel({ modelPath: file });
const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
const seq = ctx.getSequence();
async function plainTokensPerSecond(): Promise<number> {
  await seq.clearHistory();
  const prompt = model.tokenize(PROMPT);
  let out = await seq.controlledEvaluate([...prompt.slice(0, -1), [prompt.at(-1)!, { generateNext: { token: true, options: { temperature: 0 } } }]]);
  let t = out.at(-1)!.next!.token as Token;
  const t0 = performance.now();
  for (let i = 1; i < N; i++) {
    out = await seq.controlledEvaluate([[t, { generateNext: { token: true, options: { temperature: 0 } } }]]);
    t = out[0]!.next!.token as Token;
  }
  const ms = performance.now() - t0;
  return ((N - 1) * 1000) / ms;
}

// The server runs as its own process, as users run it; this process is only the client.
const cfgFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-overhead-")), "pitcher.json");
fs.writeFileSync(
  cfgFile,
  JSON.stringify({
    cacheDir: CACHE,
    devices: { count: 1, threadsPerDevice: 1, gpu, ...(opts.memory ? { memory: opts.memory } : {}) },
    scheduler: { calibrate: false, ...(opts.idleSlice ? { idleDecodeSliceMs: Number(opts.idleSlice) } : {}) },
    models: [{ id: "m", path: file }],
  }),
);
const running = await startServerProcess(cfgFile);
const server = { url: running.url, shutdown: () => running.stop() };
async function pitcherTokensPerSecond(): Promise<number> {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt: PROMPT, max_tokens: N, temperature: 0, stream: true }),
  });
  const times: number[] = [];
  const dec = new TextDecoder();
  let buf = "";
  for await (const part of res.body!) {
    buf += dec.decode(part as Uint8Array, { stream: true });
    for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith("data: {") && ev.includes('"finish_reason":null')) times.push(performance.now());
    }
  }
  if (times.length !== N) throw new Error(`expected ${N} tokens, got ${times.length}`);
  return ((N - 1) * 1000) / (times[N - 1]! - times[0]!);
}

await pitcherTokensPerSecond(); // warm: load the model
await plainTokensPerSecond();
const plain: number[] = [];
const pitcher: number[] = [];
for (let r = 0; r < Number(opts.rounds); r++) {
  plain.push(await plainTokensPerSecond());
  pitcher.push(await pitcherTokensPerSecond());
}
await server.shutdown();
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(`model ${opts.file ? path.basename(file) : opts.model}, ${N} tokens, 1 thread, gpu ${llama.gpu}, ${opts.rounds} alternated rounds`);
console.log(`plain node-llama-cpp: ${plain.map((x) => x.toFixed(1)).join(", ")} tok/s (median ${median(plain).toFixed(1)})`);
console.log(`through Pitcher:      ${pitcher.map((x) => x.toFixed(1)).join(", ")} tok/s (median ${median(pitcher).toFixed(1)})`);
console.log(`ratio (median): ${((median(pitcher) / median(plain)) * 100).toFixed(1)}%`);
// Rounds alternate, so each round's pair shares the VM's speed at that moment: the median of
// per-round ratios is robust to the drift that moves both medians.
console.log(`paired ratio (median of per-round ratios): ${(median(pitcher.map((p, i) => p / plain[i]!)) * 100).toFixed(1)}%`);
process.exit(0);
