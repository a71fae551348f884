/**
 * The reference system's public evaluation recipe, in the simulator (issue 15, BENCHMARKS.md
 * § 4 "The reference recipe"): 16 × H800, N models in a 6:2:2 mix of Qwen2.5-7B / Yi-1.5-9B
 * / Llama-2-13B, each a Poisson stream of λ req/s, ShareGPT-like lengths (input mean ≈ 700,
 * output mean ≈ 290), TTFT 10 s, TBT 100 ms. For each policy: the largest N it sustains at
 * 0.99 deadline attainment, and at the on-schedule score 0.9.
 *
 *   node --import tsx bench/referenceRecipe.ts [--seconds 600] [--rates 0.1,0.5] [--variants base,out2,out4,slo05]
 *     [--policies serverless,request,token] [--out file.json]
 *
 * `serverless` (one model per device, request-level, LRU) loads at 12.6 GB/s, the
 * ServerlessLLM loader's measured host-cache speed (simulator.md); the other policies load
 * at the cost model's speed. Prints one table row per (rate, variant) and writes JSON to
 * bench/results/reference-recipe.json.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { findAccelerator } from "../src/sim/accelerators.ts";
import { analyticCosts } from "../src/sim/SimCosts.ts";
import { simulate, type SimPolicy } from "../src/sim/Simulation.ts";
import { largestN } from "./largestN.ts";
import { referenceModels, referenceWorkload } from "./referenceMix.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "600" },
    rates: { type: "string", default: "0.1,0.5" },
    variants: { type: "string", default: "base,out2,out4,slo05" },
    policies: { type: "string", default: "serverless,request,token" },
    devices: { type: "string", default: "16" },
    seed: { type: "string", default: "1" },
    // A run of only some cells (e.g. `--rates 0.5 --variants out4`) writes elsewhere, so
    // that runs side by side do not overwrite each other's JSON.
    out: { type: "string", default: path.join(import.meta.dirname, "results", "reference-recipe.json") },
  },
});
const DEVICES = Number(values.devices);
const SECONDS = Number(values.seconds);
const SERVERLESS_LOAD_GBPS = 12.6;
const accelerator = findAccelerator("H800")!;

interface Variant {
  outputScale: number;
  sloScale: number;
}
const VARIANTS: Record<string, Variant> = {
  base: { outputScale: 1, sloScale: 1 },
  out2: { outputScale: 2, sloScale: 1 },
  out4: { outputScale: 4, sloScale: 1 },
  slo05: { outputScale: 1, sloScale: 0.5 },
};

type Goal = "attainment" | "score";

function passes(policy: SimPolicy, n: number, rate: number, v: Variant, goal: Goal): boolean {
  const models = referenceModels(n);
  const requests = referenceWorkload(models, { seed: Number(values.seed), seconds: SECONDS, ratePerModel: rate, outputScale: v.outputScale });
  const slo = { ttftMs: 10_000 * v.sloScale, tbtMs: 100 * v.sloScale };
  const r = simulate(
    {
      costs: analyticCosts(accelerator, models),
      slo: () => slo,
      devices: DEVICES,
      policy,
      recordTraces: false,
      ...(policy === "serverless" ? { loadGBps: SERVERLESS_LOAD_GBPS } : {}),
      // Stop as soon as this goal is out of reach (the other is set unreachable-proof).
      stopBelow: goal === "attainment" ? { attainment: 0.99, onScheduleScore: 2 } : { attainment: 2, onScheduleScore: 0.9 },
    },
    requests,
  );
  const ok = !r.stopped && (goal === "attainment" ? r.report.attainment >= 0.99 : r.report.onScheduleScore >= 0.9);
  // One line per run, so that a cell that does not finish still shows how far its search got.
  process.stderr.write(`  λ=${rate} ${policy} N=${n} (${goal}): ${ok ? "pass" : "fail"}\n`);
  return ok;
}

const policies = values.policies.split(",") as SimPolicy[];
const rows: Record<string, unknown>[] = [];
console.log(`| λ per model | variant | ${policies.map((p) => `${p} N@0.99 (N@score 0.9)`).join(" | ")} | token ÷ serverless | token ÷ request |`);
console.log(`|---|---|${policies.map(() => "---|").join("")}---|---|`);
for (const rate of values.rates.split(",").map(Number)) {
  for (const name of values.variants.split(",")) {
    const v = VARIANTS[name];
    if (!v) throw new Error(`unknown variant ${name}`);
    const found: Record<string, { attainment: number; score: number }> = {};
    for (const p of policies) {
      const t0 = performance.now();
      found[p] = { attainment: largestN((n) => passes(p, n, rate, v, "attainment")), score: largestN((n) => passes(p, n, rate, v, "score")) };
      process.stderr.write(`λ=${rate} ${name} ${p}: N=${found[p].attainment} (score ${found[p].score}) in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    const ratio = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : "–");
    const cell = (p: string) => `${found[p]!.attainment} (${found[p]!.score})`;
    console.log(
      `| ${rate} | ${name} | ${policies.map(cell).join(" | ")} | ${ratio(found.token?.attainment, found.serverless?.attainment)} (${ratio(found.token?.score, found.serverless?.score)}) | ${ratio(found.token?.attainment, found.request?.attainment)} (${ratio(found.token?.score, found.request?.score)}) |`,
    );
    rows.push({ rate, variant: name, ...found });
  }
}
fs.writeFileSync(values.out, `${JSON.stringify({ devices: DEVICES, accelerator: "H800", seconds: SECONDS, serverlessLoadGBps: SERVERLESS_LOAD_GBPS, rows }, null, 1)}\n`);
