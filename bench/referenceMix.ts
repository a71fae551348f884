/**
 * The reference system's evaluation setup in the simulator (issue 15), shared by
 * referenceRecipe.ts (largest N on 16 devices) and modelsPerDevice.ts (largest N on one):
 * N models in a 6:2:2 mix of Qwen2.5-7B / Yi-1.5-9B / Llama-2-13B (bf16), each a Poisson
 * stream of λ req/s, uniform popularity, ShareGPT-like lengths (log-normal, input mean 700,
 * output mean 290, CV 1).
 */
import { findModelPreset, type SimModelSpec } from "../src/sim/modelPresets.ts";
import { generateWorkload, type WorkloadRequest } from "../src/workload/workload.ts";

/** N models, 6:2:2 over the three presets, in a fixed interleaved order. */
export function referenceModels(n: number): SimModelSpec[] {
  const presets = ["qwen2.5-7b", "qwen2.5-7b", "qwen2.5-7b", "yi-1.5-9b", "llama-2-13b"];
  return Array.from({ length: n }, (_, i) => {
    const p = findModelPreset(presets[i % presets.length]!)!;
    return { ...p, id: `${p.id}-${i + 1}` };
  });
}

/** `seconds` of requests to `models`, each at `ratePerModel` req/s; outputs scaled by `outputScale`. */
export function referenceWorkload(models: SimModelSpec[], o: { seed: number; seconds: number; ratePerModel: number; outputScale: number }): WorkloadRequest[] {
  return generateWorkload(
    {
      seed: o.seed,
      durationSeconds: o.seconds,
      ratePerSecond: o.ratePerModel * models.length,
      arrivals: { kind: "poisson" },
      popularity: { kind: "uniform" },
      inputTokens: { mean: 700, cv: 1, min: 4, max: 4096 },
      outputTokens: { mean: 290 * o.outputScale, cv: 1, min: 1, max: 2048 * o.outputScale },
    },
    models.map((m) => m.id),
  );
}
