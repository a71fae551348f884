/**
 * The seeded workload of `../shared/docs/benchmarks.md`'s scenarios, as the real-server
 * benchmark (policies.ts) and its simulated twin (policiesSim.ts) both send it: Poisson
 * arrivals, 64-token prompts, uniform or Zipf(1) popularity.
 */
import { workloadSchema, type WorkloadSpec } from "../src/workload/workload.ts";

/**
 * `o`: the scripts' command-line options: `--seed`, `--duration`, `--popularity`, `--output`,
 * and optionally `--output-cv` (log-normal output lengths of that mean and coefficient of
 * variation, up to 900 tokens, so that prompt and output fit a 1024-token context) and
 * `--arrival-cv` (gamma arrivals of that coefficient of variation; above 1 burstier than
 * Poisson).
 */
export function scenarioWorkload(o: Record<string, unknown>, rate: number): WorkloadSpec {
  return workloadSchema.parse({
    seed: Number(o.seed),
    durationSeconds: Number(o.duration),
    ratePerSecond: rate,
    arrivals: Number(o.arrivalCv ?? 1) === 1 ? { kind: "poisson" } : { kind: "gamma", cv: Number(o.arrivalCv) },
    popularity: o.popularity === "zipf" ? { kind: "zipf", s: 1 } : { kind: "uniform" },
    inputTokens: 64,
    outputTokens: Number(o.outputCv ?? 0) > 0 ? { mean: Number(o.output), cv: Number(o.outputCv), min: 1, max: 900 } : Number(o.output),
  });
}
