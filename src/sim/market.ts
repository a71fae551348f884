/**
 * The embedded default model market (../shared/docs/simulator.md): tens of models from 7B
 * to 72B, some Mixture-of-Experts and some FP8, with skewed popularity — a few hot models
 * and a long tail — on H20 accelerators, as in the reference design's production setting.
 */
import type { WorkloadSpec } from "../workload/workload.ts";
import { findModelPreset, type SimModelSpec, type WeightFormat } from "./modelPresets.ts";

function variant(preset: string, n: number, format?: WeightFormat): SimModelSpec {
  const p = findModelPreset(preset)!;
  return { ...p, id: `${preset}${format ? `-${format}` : ""}-${n}`, ...(format ? { format } : {}) };
}

export function defaultMarketModels(): SimModelSpec[] {
  const out: SimModelSpec[] = [];
  const add = (preset: string, count: number, format?: WeightFormat) => {
    for (let i = 1; i <= count; i++) out.push(variant(preset, i, format));
  };
  add("qwen2.5-7b", 8);
  add("yi-1.5-9b", 3);
  add("llama-2-13b", 3);
  add("qwen2.5-14b", 4);
  add("qwen2.5-14b", 2, "fp8");
  add("qwen3-30b-a3b", 3);
  add("ernie-4.5-21b-a3b", 2);
  add("qwen2.5-72b", 2, "fp8");
  add("deepseek-ocr", 1);
  return out;
}

export const DEFAULT_MARKET_WORKLOAD = {
  seed: 1,
  durationSeconds: 600,
  ratePerSecond: 8,
  arrivals: { kind: "poisson" as const },
  popularity: { kind: "zipf" as const, s: 1.2 },
  inputTokens: { mean: 600, cv: 1.2, min: 8, max: 8192 },
  outputTokens: { mean: 250, cv: 1.0, min: 4, max: 2048 },
} satisfies Partial<WorkloadSpec>;
