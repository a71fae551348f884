/**
 * Scenario P (../shared/docs/benchmarks.md) in the simulator, priced with this machine's
 * profile: six copies of one profiled model (distinct files of one shape in the real
 * scenario), two devices of the profile's memory, the same seeded workload as
 * bench/policies.ts. Fast enough to sweep policies and rates while changing the scheduler;
 * the real server has the last word (bench/policies.ts).
 *
 *   node --import tsx bench/policiesSim.ts --profile bench/results/machine-profile.json --rates 2,4,6,8,10,12
 */
import { Command } from "commander";
import { DEFAULT_SLO } from "../src/core/types.ts";
import { machineProfileSchema, measuredCosts } from "../src/sim/machineProfile.ts";
import { loadMachineProfile } from "../src/sim/planInputs.ts";
import { simulate, type SimPolicy } from "../src/sim/Simulation.ts";
import { generateWorkload } from "../src/workload/workload.ts";
import { scenarioWorkload } from "./scenarioWorkload.ts";

const opts = new Command()
  .requiredOption("--profile <file>", "machine profile")
  .option("--model <id>", "the profiled model to copy", "llama-58m-q8-a")
  .option("--copies <n>", "models in the scenario", "6")
  .option("--policies <list>", "policies", "token,request")
  .option("--rates <list>", "arrival rates, req/s", "2,4,6,8,10,12")
  .option("--duration <s>", "seconds per rate", "60")
  .option("--ttft <ms>", "TTFT target", "2000")
  .option("--output <n>", "output tokens", "32")
  .option("--output-cv <cv>", "log-normal output lengths of this coefficient of variation (0: fixed)", "0")
  .option("--arrival-cv <cv>", "gamma arrivals of this coefficient of variation (1: Poisson)", "1")
  .option("--popularity <kind>", "uniform or zipf", "uniform")
  .option("--seed <n>", "workload seed", "7")
  .option("--verbose", "switches, swaps and utilisation per run")
  .parse()
  .opts();

const base = loadMachineProfile(opts.profile);
const template = base.models.find((m) => m.id === opts.model);
if (!template) throw new Error(`no model ${opts.model} in ${opts.profile}`);
const ttftMs = Number(opts.ttft);
const profile = machineProfileSchema.parse({
  ...base,
  server: { ...base.server, admissionTtftFactor: 0 },
  models: Array.from({ length: Number(opts.copies) }, (_, i) => ({ ...template, id: `p58m-${i}`, slo: { ttftMs, tbtMs: 100 } })),
});
const costs = measuredCosts(profile);
console.log(
  `policy   ${String(opts.rates)
    .split(",")
    .map((r) => `${r}/s`.padStart(7))
    .join("")}`,
);
for (const policy of String(opts.policies).split(",")) {
  const cells: string[] = [];
  for (const rate of String(opts.rates).split(",").map(Number)) {
    const requests = generateWorkload(scenarioWorkload(opts, rate), costs.modelIds);
    const r = simulate({ costs, slo: () => ({ ...DEFAULT_SLO, ttftMs }), devices: profile.devices.count, policy: policy as SimPolicy, recordTimeline: !!opts.verbose }, requests);
    cells.push(r.report.attainment.toFixed(3).padStart(7));
    if (opts.verbose) {
      const swaps = r.timeline.filter((e) => e.kind === "swapOut").length;
      const by: Record<string, number> = {};
      for (const e of r.timeline) by[e.kind] = (by[e.kind] ?? 0) + (e.endMs - e.startMs) / 1000;
      const kinds = Object.entries(by)
        .map(([k, v]) => `${k} ${v.toFixed(1)}s`)
        .join(", ");
      console.log(`  ${policy} @${rate}: ${kinds}`);
      let ttftMiss = 0;
      let laterMiss = 0;
      for (const t of r.traces) {
        if (!t.tokenTimesMs.length || t.tokenTimesMs[0]! > t.arrivalMs + ttftMs) ttftMiss++;
        else if (t.tokenTimesMs.some((x, k) => x > t.arrivalMs + ttftMs + k * 100)) laterMiss++;
      }
      console.log(`  ${policy} @${rate}: misses: first token ${ttftMiss}, later tokens ${laterMiss} of ${r.traces.length}`);
      console.log(
        `  ${policy} @${rate}: switches ${r.switches}, swapOuts ${swaps}, utilisation ${r.utilization.toFixed(2)}, TTFT p50/p99 ${r.report.ttftP50Ms.toFixed(0)}/${r.report.ttftP99Ms.toFixed(0)}`,
      );
    }
  }
  console.log(`${policy.padEnd(8)} ${cells.join("")}`);
}
