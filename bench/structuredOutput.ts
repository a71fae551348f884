/**
 * Structured output (BENCHMARKS.md): decode tokens/s of one json_schema-constrained request
 * against the same request unconstrained, same model, prompt, seed and length, alternated
 * in one run through the real server (its own process, one device of one thread). The
 * schema (100 records) cannot end before `--tokens`, so both runs stream that many tokens
 * (the unconstrained one may stop early at an end token; its rate counts what it sent).
 *
 *   node --import tsx bench/structuredOutput.ts --model llama-58m-q8-a --tokens 256 --rounds 5
 *   node --import tsx bench/structuredOutput.ts --model stories --tokens 256 --rounds 5
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { ROOT, startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--model <id>", "a stand-in model, or stories (stories260K)", "llama-58m-q8-a")
  .option("--tokens <n>", "tokens per run", "256")
  .option("--rounds <n>", "alternations", "3")
  .parse()
  .opts();
const CACHE = path.resolve(ROOT, ".pitcher-cache");
const file = opts.model === "stories" ? path.resolve(ROOT, "../shared/models/stories260K.gguf") : ensureStandIns(CACHE).find((m) => m.id === opts.model)!.path;
const N = Number(opts.tokens);
const PROMPT = "Records of the pool, as JSON:";
const SCHEMA = {
  type: "array",
  items: {
    type: "object",
    properties: { id: { type: "integer" }, name: { type: "string", maxLength: 12 }, active: { type: "boolean" } },
    required: ["id", "name", "active"],
    additionalProperties: false,
  },
  minItems: 100,
  maxItems: 100,
};

const cfgFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-structured-")), "pitcher.json");
fs.writeFileSync(
  cfgFile,
  JSON.stringify({
    cacheDir: CACHE,
    devices: { count: 1, threadsPerDevice: 1 },
    scheduler: { calibrate: false },
    defaults: { contextTokens: Math.max(1024, N + 64) },
    models: [{ id: "m", path: file }],
  }),
);
const server = await startServerProcess(cfgFile);

/** Tokens/s between the first and the last streamed token, and how many came. */
async function tokensPerSecond(constrained: boolean): Promise<{ rate: number; tokens: number }> {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "m",
      prompt: PROMPT,
      max_tokens: N,
      temperature: 1,
      seed: 7,
      stream: true,
      ...(constrained ? { response_format: { type: "json_schema", json_schema: { name: "records", schema: SCHEMA } } } : {}),
    }),
  });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
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
  if (constrained && times.length !== N) throw new Error(`the constrained run sent ${times.length} tokens, not ${N}`);
  if (times.length < 2) throw new Error(`only ${times.length} tokens came`);
  return { rate: ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!), tokens: times.length };
}

// Warm: load the model, compile the grammar.
await tokensPerSecond(false);
await tokensPerSecond(true);
const plain: number[] = [];
const constrained: number[] = [];
const plainTokens: number[] = [];
for (let r = 0; r < Number(opts.rounds); r++) {
  const p = await tokensPerSecond(false);
  plain.push(p.rate);
  plainTokens.push(p.tokens);
  constrained.push((await tokensPerSecond(true)).rate);
}
await server.stop();
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(`model ${opts.model}, ${N} tokens (unconstrained runs sent ${plainTokens.join(", ")}), temperature 1, 1 device of 1 thread, ${opts.rounds} alternated rounds`);
console.log(`unconstrained: ${plain.map((x) => x.toFixed(1)).join(", ")} tok/s (median ${median(plain).toFixed(1)})`);
console.log(`json_schema:   ${constrained.map((x) => x.toFixed(1)).join(", ")} tok/s (median ${median(constrained).toFixed(1)})`);
// Alternated rounds share the machine's speed at that moment: the median of per-round ratios is robust to drift.
console.log(`paired ratio (median of per-round ratios): ${median(constrained.map((c, i) => c / plain[i]!)).toFixed(2)} (target ≥ 0.8)`);
process.exit(0);
