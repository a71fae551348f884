/**
 * A seeded multi-model trace for planner speed (BENCHMARKS.md, "Simulation speed"): by default
 * 30,000 requests over the 90 models of bench/sim/big-90-models.yaml, Zipf popularity over a
 * seeded shuffle of the models (hot models of every shape), bursty gamma arrivals, and
 * prompt and output lengths drawn from the rows of the Azure LLM inference trace
 * (../shared/data/azure-llm-inference-2023-conv.csv). Writes the trace (CSV with a model
 * column, the format `pitcher plan` replays) and a workload file that points at it:
 *
 *   node --import tsx bench/bigTrace.ts --out /tmp/big-trace
 *   /usr/bin/time -f "%e s %M KB" node --import tsx src/cli/main.ts plan \
 *     --models bench/sim/big-90-models.yaml --workload /tmp/big-trace/workload.yaml
 */
import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { createRng, deriveSeed, sampleGamma } from "../src/core/random.ts";
import { loadMarket } from "../src/sim/planInputs.ts";
import { popularityWeights } from "../src/workload/workload.ts";

const here = import.meta.dirname;
const o = new Command()
  .option("--out <dir>", "where to write trace.csv and workload.yaml", "/tmp/big-trace")
  .option("--models <file>", "model catalog", path.join(here, "sim", "big-90-models.yaml"))
  .option("--requests <n>", "requests", "30000")
  .option("--rate <r>", "mean arrival rate, req/s", "8")
  .option("--arrival-cv <cv>", "coefficient of variation of the gaps between arrivals (1: Poisson)", "2")
  .option("--zipf <s>", "Zipf exponent of model popularity", "1.1")
  .option("--lengths <csv>", "trace whose ContextTokens/GeneratedTokens rows give the lengths", path.join(here, "..", "..", "shared", "data", "azure-llm-inference-2023-conv.csv"))
  .option("--seed <n>", "seed", "1")
  .parse()
  .opts();

const seed = Number(o.seed);
const n = Number(o.requests);
const ids = loadMarket(o.models).models.map((m) => m.id);
// Popularity ranks over a seeded shuffle, so hot models come in every shape.
const shuffle = createRng(deriveSeed(seed, "big-trace-ranks"));
for (let i = ids.length - 1; i > 0; i--) {
  const j = Math.floor(shuffle.next() * (i + 1));
  [ids[i], ids[j]] = [ids[j]!, ids[i]!];
}
const weights = popularityWeights(ids.length, { kind: "zipf", s: Number(o.zipf) });
const rows = fs
  .readFileSync(o.lengths, "utf8")
  .trim()
  .split(/\r?\n/)
  .slice(1)
  .map((l) => l.split(","));
const rng = createRng(deriveSeed(seed, "big-trace"));
// Gamma gaps with the given mean and coefficient of variation: shape 1/cv², scale mean·cv².
const cv = Number(o.arrivalCv);
const meanGapS = 1 / Number(o.rate);
const lines = ["TIMESTAMP,ContextTokens,GeneratedTokens,model"];
let t = 0;
for (let i = 0; i < n; i++) {
  t += sampleGamma(rng, 1 / (cv * cv), meanGapS * cv * cv);
  let u = rng.next();
  let m = 0;
  while (m < weights.length - 1 && u >= weights[m]!) u -= weights[m++]!;
  const row = rows[Math.floor(rng.next() * rows.length)]!;
  lines.push(`${t.toFixed(3)},${row[1]},${row[2]},${ids[m]}`);
}
fs.mkdirSync(o.out, { recursive: true });
fs.writeFileSync(path.join(o.out, "trace.csv"), `${lines.join("\n")}\n`);
// Replay the whole trace (the workload's default duration would keep its first minute).
fs.writeFileSync(path.join(o.out, "workload.yaml"), `seed: ${seed}\ndurationSeconds: ${Math.ceil(t) + 1}\ntrace: { file: trace.csv, modelColumn: model }\n`);
console.log(`${n} requests over ${ids.length} models, ${(t / 3600).toFixed(2)} h, in ${path.join(o.out, "trace.csv")} and workload.yaml`);
