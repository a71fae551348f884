/**
 * Load shedding in the simulator: attainment and goodput against the arrival rate, for
 * pairs of admission factor (`admissionTtftFactor`) and late-wait cap (`lateWaitCapFactor`),
 * so that the knee and what lies past it can be read off one table (BENCHMARKS.md).
 *
 * Scenario P (../shared/docs/benchmarks.md) priced with this machine's profile, as
 * bench/policiesSim.ts runs it:
 *   node --import tsx bench/shedSim.ts --profile bench/results/machine-profile.json --rates 3,4,5,6,8 --variants 0/inf,3/inf,0/0.5,1/0.5
 * A GPU market (a catalog accelerator), at a fixed fleet:
 *   node --import tsx bench/shedSim.ts --models bench/sim/market-7b-13b.yaml --accelerator H800 --workload bench/sim/market-skewed.yaml --devices 3 --duration 300 --rates 4,6,8
 * A variant is `admission/cap`: `0` turns admission off, `inf` the cap.
 */
import { Command } from "commander";
import { prepare } from "../src/cli/plan.ts";
import { DEFAULT_SLO } from "../src/core/types.ts";
import { machineProfileSchema, measuredCosts } from "../src/sim/machineProfile.ts";
import { loadMachineProfile } from "../src/sim/planInputs.ts";
import type { SimCosts } from "../src/sim/SimCosts.ts";
import { simulate, type SimPolicy } from "../src/sim/Simulation.ts";
import { generateWorkload, type WorkloadRequest } from "../src/workload/workload.ts";
import { scenarioWorkload } from "./scenarioWorkload.ts";

const opts = new Command()
  .option("--profile <file>", "machine profile: scenario P on its devices")
  .option("--model <id>", "scenario P: the profiled model to copy", "llama-58m-q8-a")
  .option("--copies <n>", "scenario P: models in the scenario", "6")
  .option("--ttft <ms>", "scenario P: TTFT target", "2000")
  .option("--output <n>", "scenario P: output tokens", "32")
  .option("--popularity <kind>", "scenario P: uniform or zipf", "uniform")
  .option("--models <file>", "a market of models (with --accelerator and --workload)")
  .option("--accelerator <name>", "catalog accelerator", "H800")
  .option("--workload <file>", "market workload (its rate is replaced by each of --rates)")
  .option("--devices <n>", "devices (default: the profile's)")
  .option("--policy <name>", "policy", "token")
  .option("--rates <list>", "arrival rates, req/s", "3,4,5,6,8")
  .option("--duration <s>", "seconds per rate", "60")
  .option("--seed <n>", "workload seed", "7")
  .option("--variants <list>", "admission/cap pairs", "0/inf,3/inf,0/0.5,1/0.5")
  .parse()
  .opts();

const rates = String(opts.rates).split(",").map(Number);
let costs: SimCosts;
let slo: (m: string) => { ttftMs: number; tbtMs: number };
let devices: number;
let workloadAt: (rate: number) => WorkloadRequest[];
if (opts.profile) {
  const base = loadMachineProfile(opts.profile);
  const template = base.models.find((m) => m.id === opts.model);
  if (!template) throw new Error(`no model ${opts.model} in ${opts.profile}`);
  const ttftMs = Number(opts.ttft);
  const profile = machineProfileSchema.parse({
    ...base,
    models: Array.from({ length: Number(opts.copies) }, (_, i) => ({ ...template, id: `p58m-${i}`, slo: { ttftMs, tbtMs: 100 } })),
  });
  const c = measuredCosts(profile);
  costs = c;
  slo = () => ({ ...DEFAULT_SLO, ttftMs });
  devices = Number(opts.devices ?? profile.devices.count);
  workloadAt = (rate) => generateWorkload(scenarioWorkload(opts, rate), c.modelIds);
} else {
  if (!opts.models || !opts.devices) throw new Error("give --profile, or --models, --workload and --devices");
  const args = { models: opts.models, accelerator: opts.accelerator, workload: opts.workload, seed: Number(opts.seed), duration: Number(opts.duration) };
  const p = prepare(args);
  costs = p.costs;
  slo = p.slo;
  devices = Number(opts.devices);
  workloadAt = (rate) => prepare({ ...args, rate }).requests;
}

const variants = String(opts.variants)
  .split(",")
  .map((v) => {
    const [a, c] = v.split("/");
    return { name: v, admissionTtftFactor: Number(a), lateWaitCapFactor: c === "inf" ? Infinity : Number(c) };
  });
const workloads = new Map(rates.map((r) => [r, workloadAt(r)]));
console.log(`${costs.id}, ${devices} devices, ${opts.policy}; cells: attainment / goodput (req/s) / TTFT p99 (s)`);
console.log(`| admission/cap | ${rates.map((r) => `${r}/s`).join(" | ")} |`);
console.log(`|---|${rates.map(() => "---").join("|")}|`);
for (const v of variants) {
  const cells = rates.map((rate) => {
    const r = simulate(
      {
        costs,
        slo,
        devices,
        policy: opts.policy as SimPolicy,
        recordTraces: false,
        scheduler: { admissionTtftFactor: v.admissionTtftFactor, lateWaitCapFactor: v.lateWaitCapFactor },
      },
      workloads.get(rate)!,
    );
    return `${r.report.attainment.toFixed(3)} / ${r.report.goodput.toFixed(2)} / ${(r.report.ttftP99Ms / 1000).toFixed(1)}`;
  });
  console.log(`| ${v.name} | ${cells.join(" | ")} |`);
}
