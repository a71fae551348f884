/**
 * The planner against the real server (BENCHMARKS.md, issue "Measure"): profile this machine
 * on the default catalog, predict SLO attainment with `pitcher simulate --profile` at three
 * arrival rates, then measure it with `pitcher bench` against a real server started with the
 * same configuration (a fresh server per rate, as the simulation starts from an empty pool).
 *
 *   node --import tsx bench/planVsBench.ts --rates 2,4,8 --duration 60 --ttft 2000
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { runBench } from "../src/cli/bench.ts";
import { prepare } from "../src/cli/plan.ts";
import { runProfile } from "../src/cli/profile.ts";
import { loadMachineProfile } from "../src/sim/planInputs.ts";
import { simulate, type SimPolicy } from "../src/sim/Simulation.ts";
import { ROOT, startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--rates <list>", "arrival rates, req/s", "2,4,8")
  .option("--duration <s>", "seconds per rate", "60")
  .option("--ttft <ms>", "TTFT target of every model", "2000")
  .option("--policy <name>", "token or request", "token")
  .option("--profile <file>", "use this machine profile instead of measuring one")
  .option("--out <file>", "JSON results", path.join(ROOT, "bench/results/plan-vs-bench.json"))
  .parse()
  .opts();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-pvb-"));
const configFile = path.join(dir, "pitcher.json");
// The default catalog and server settings; only the SLO is set, so that attainment moves
// within the rates a 2-core machine can take.
fs.writeFileSync(
  configFile,
  JSON.stringify({ cacheDir: path.join(ROOT, ".pitcher-cache"), scheduler: { policy: opts.policy }, defaults: { slo: { ttftMs: Number(opts.ttft), tbtMs: 100 } } }),
);
const workloadFile = path.join(dir, "workload.json");
fs.writeFileSync(workloadFile, JSON.stringify({ seed: 7, durationSeconds: Number(opts.duration), inputTokens: 64, outputTokens: 32 }));

let profileFile = opts.profile as string | undefined;
if (!profileFile) {
  profileFile = path.join(ROOT, "bench/results/machine-profile.json");
  console.error("profiling the default catalog on one device…");
  await runProfile({ configFile, out: profileFile, repeats: 3, progress: false, log: () => {} });
}

const rows = [];
for (const rate of String(opts.rates).split(",").map(Number)) {
  const p = prepare({ profile: profileFile, accelerator: "", workload: workloadFile, rate });
  const devices = loadMachineProfile(profileFile).devices.count;
  const sim = simulate({ costs: p.costs, slo: p.slo, devices, policy: opts.policy as SimPolicy }, p.requests);
  const server = await startServerProcess(configFile);
  const [measured] = await runBench({ url: server.url, workload: workloadFile, rates: [rate], ttftMs: Number(opts.ttft), tbtMs: 100, progress: false, drainTimeoutMs: 30_000 });
  await server.stop();
  const m = measured!.overall;
  const row = {
    rate,
    requests: m.requests,
    predicted: { attainment: sim.report.attainment, goodput: sim.report.goodput, ttftP50Ms: sim.report.ttftP50Ms, ttftP99Ms: sim.report.ttftP99Ms, tbtP99Ms: sim.report.tbtP99Ms },
    measured: { attainment: m.attainment, goodput: m.goodput, ttftP50Ms: m.ttftP50Ms, ttftP99Ms: m.ttftP99Ms, tbtP99Ms: m.tbtP99Ms, errors: measured!.errors },
    differencePoints: Math.round((sim.report.attainment - m.attainment) * 1000) / 10,
  };
  rows.push(row);
  console.error(JSON.stringify(row));
}
fs.mkdirSync(path.dirname(opts.out), { recursive: true });
fs.writeFileSync(
  opts.out,
  JSON.stringify({ policy: opts.policy, ttftMs: Number(opts.ttft), durationSeconds: Number(opts.duration), profile: path.relative(ROOT, profileFile), rows }, null, 1),
);
const f = (x: number) => x.toFixed(3);
console.log("rate  requests  attainment predicted / measured (Δ points)  goodput predicted / measured  TTFT p50 ms  TTFT p99 ms");
for (const r of rows)
  console.log(
    `${String(r.rate).padStart(4)}  ${String(r.requests).padStart(8)}  ${f(r.predicted.attainment)} / ${f(r.measured.attainment)} (${r.differencePoints >= 0 ? "+" : ""}${r.differencePoints})`.padEnd(
      66,
    ) +
      `${r.predicted.goodput.toFixed(2)} / ${r.measured.goodput.toFixed(2)}`.padEnd(30) +
      `${r.predicted.ttftP50Ms.toFixed(0)} / ${r.measured.ttftP50Ms.toFixed(0)}`.padEnd(13) +
      `${r.predicted.ttftP99Ms.toFixed(0)} / ${r.measured.ttftP99Ms.toFixed(0)}`,
  );
