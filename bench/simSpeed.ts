/**
 * Simulator speed (BENCHMARKS.md): one simulated hour of a 50-model market at 20 req/s on 64
 * devices under `token`. Run with /usr/bin/time -v for peak memory.
 *
 *   /usr/bin/time -v node --import tsx bench/simSpeed.ts [accelerator] [seconds]
 *
 * A shorter slice (e.g. `H20 600`, the first ten minutes) is what to profile:
 *   node --cpu-prof --cpu-prof-dir /tmp/prof --import tsx bench/simSpeed.ts H20 600
 */
import path from "node:path";
import { DEFAULT_SLO } from "../src/core/types.ts";
import { loadMarket, loadWorkload, resolveAccelerator } from "../src/sim/planInputs.ts";
import { analyticCosts } from "../src/sim/SimCosts.ts";
import { simulate } from "../src/sim/Simulation.ts";

const dir = path.join(import.meta.dirname, "sim");
const market = loadMarket(path.join(dir, "speed-50-models.yaml"));
const t0 = performance.now();
const requests = loadWorkload(
  path.join(dir, "speed-1h-20rps.yaml"),
  market.models.map((m) => m.id),
  process.argv[3] ? { durationSeconds: Number(process.argv[3]) } : {},
);
const t1 = performance.now();
const r = simulate(
  { costs: analyticCosts(resolveAccelerator(process.argv[2] ?? "H20", market), market.models), slo: (m) => market.slo.get(m) ?? DEFAULT_SLO, devices: 64, policy: "token" },
  requests,
);
const t2 = performance.now();
console.log(`${market.models.length} models, ${requests.length} requests, 64 devices, token`);
console.log(`workload ${((t1 - t0) / 1000).toFixed(1)} s, simulation ${((t2 - t1) / 1000).toFixed(1)} s wall for ${(r.simulatedMs / 3600e3).toFixed(2)} h simulated`);
console.log(`attainment ${r.report.attainment.toFixed(3)}, goodput ${r.report.goodput.toFixed(2)}/s, utilisation ${r.utilization.toFixed(2)}, switches ${r.switches}`);
