/**
 * The seeded workload of `../shared/docs/benchmarks.md`'s scenarios, as the real-server
 * benchmark (policies.ts) and its simulated twin (policiesSim.ts) both send it: Poisson
 * arrivals, 64-token prompts, uniform or Zipf(1) popularity.
 */
import { workloadSchema, type WorkloadSpec } from "../src/workload/workload.ts";

/** `o`: the scripts' command-line options (`--seed`, `--duration`, `--popularity`, `--output`). */
export function scenarioWorkload(o: Record<string, unknown>, rate: number): WorkloadSpec {
  return workloadSchema.parse({
    seed: Number(o.seed),
    durationSeconds: Number(o.duration),
    ratePerSecond: rate,
    popularity: o.popularity === "zipf" ? { kind: "zipf", s: 1 } : { kind: "uniform" },
    inputTokens: 64,
    outputTokens: Number(o.output),
  });
}
