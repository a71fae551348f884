/**
 * The cost of logprobs (issue 11's target: ≥ 0.9): decode tokens/s of one streamed request
 * with `logprobs` and 5 alternatives per token against the same request without, same model,
 * prompt and length, alternated in one run against one server process.
 *
 *   node --import tsx bench/logprobs.ts --tokens 128 --rounds 3
 *
 * Temperature 0 is the costly case: the greedy sampler leaves the whole vocabulary as
 * candidates, which the device sorts to find the top 5 (sampling with top-k keeps 40).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--model <id>", "stand-in model", "llama-58m-q8-a")
  .option("--tokens <n>", "tokens per run", "128")
  .option("--rounds <n>", "alternations", "3")
  .option("--temperature <t>", "sampling temperature (0: greedy)", "0")
  .parse()
  .opts();
const CACHE = path.resolve(import.meta.dirname, "..", ".pitcher-cache");
const file = ensureStandIns(CACHE).find((m) => m.id === opts.model)!.path;
const N = Number(opts.tokens);
const PROMPT = "Once upon a time, a pool of devices served many models";

const cfgFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-logprobs-")), "pitcher.json");
fs.writeFileSync(cfgFile, JSON.stringify({ cacheDir: CACHE, devices: { count: 1, threadsPerDevice: 1 }, scheduler: { calibrate: false }, models: [{ id: "m", path: file }] }));
const server = await startServerProcess(cfgFile);

/** Tokens/s from the first streamed token to the last. */
async function tokensPerSecond(logprobs: boolean): Promise<number> {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt: PROMPT, max_tokens: N, temperature: Number(opts.temperature), seed: 1, stream: true, ...(logprobs ? { logprobs: 5 } : {}) }),
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
  if (times.length < 2) throw new Error(`expected ${N} tokens, got ${times.length}`);
  return ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  await tokensPerSecond(false); // warm-up: load the model
  const plain: number[] = [];
  const withLogprobs: number[] = [];
  for (let r = 0; r < Number(opts.rounds); r++) {
    plain.push(await tokensPerSecond(false));
    withLogprobs.push(await tokensPerSecond(true));
    console.log(`round ${r + 1}: without ${plain.at(-1)!.toFixed(1)} tok/s, with logprobs (top 5) ${withLogprobs.at(-1)!.toFixed(1)} tok/s`);
  }
  const ratio = median(withLogprobs) / median(plain);
  console.log(
    `model ${opts.model}, ${N} tokens, temperature ${opts.temperature}: without ${median(plain).toFixed(1)} tok/s, with ${median(withLogprobs).toFixed(1)} tok/s (medians of ${opts.rounds}); ratio ${ratio.toFixed(3)} (target ≥ 0.9)`,
  );
} finally {
  await server.stop();
}
