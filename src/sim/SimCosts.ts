/**
 * What the simulator needs to know about a fleet's devices: their memory, and how long each
 * command takes. Two sources: the analytic cost model of a catalog accelerator running
 * catalog models (costModel.ts), or a machine profile measured by `pitcher profile` on a
 * real device (machineProfile.ts).
 */
import type { ModelProfile, SloTargets } from "../core/types.ts";
import type { SchedulerOptions } from "../scheduler/Scheduler.ts";
import type { AcceleratorSpec } from "./accelerators.ts";
import { decodeStepMs, kvSwapMsPerToken, prefillMs, switchMs } from "./costModel.ts";
import { kvBytesPerToken, weightBytes, type SimModelSpec } from "./modelPresets.ts";

export interface SimCosts {
  /** What the devices are (reports): an accelerator id or a machine profile's id. */
  id: string;
  /** Device memory for weights plus KV. */
  memoryBytes: number;
  modelIds: string[];
  /** The scheduler's view of a model: memory, limits, first estimates. */
  profile(modelId: string, slo: SloTargets, maxBatch: number, contextTokens: number): ModelProfile;
  loadMs(modelId: string): number;
  evictMs(modelId: string): number;
  /** A prompt chunk [fromToken, toToken) of one request. */
  prefillMs(modelId: string, fromToken: number, toToken: number): number;
  /** One decode step of `batch` sequences holding `contextTokens` tokens on average. */
  decodeStepMs(modelId: string, batch: number, contextTokens: number): number;
  kvSwapMs(modelId: string, tokens: number): number;
  /**
   * How much slower a command runs while `busyDevices` devices (itself included) work at
   * once: devices that share a machine's cores and memory bandwidth (a CPU). Absent: 1.
   */
  contention?(busyDevices: number): number;
  /** Settings of the engine and scheduler these costs were measured under (a profile's server). */
  defaults?: { maxBatch?: number; contextTokens?: number; scheduler?: Partial<SchedulerOptions> };
}

/** A catalog accelerator running catalog models, priced by the analytic cost model. */
export function analyticCosts(acc: AcceleratorSpec, models: SimModelSpec[], usableMemoryFraction = 0.9): SimCosts {
  const specs = new Map(models.map((m) => [m.id, m]));
  const spec = (id: string) => {
    const m = specs.get(id);
    if (!m) throw new Error(`unknown model ${id}`);
    return m;
  };
  return {
    id: acc.id,
    memoryBytes: acc.memoryGB * 1e9 * usableMemoryFraction,
    modelIds: models.map((m) => m.id),
    profile(id, slo, maxBatch, contextTokens) {
      const m = spec(id);
      const d1 = decodeStepMs(acc, m, 1, 512);
      const d8 = decodeStepMs(acc, m, 8, 512);
      return {
        id,
        weightBytes: weightBytes(m),
        kvBytesPerToken: kvBytesPerToken(m),
        contextTokens,
        maxBatch,
        slo,
        estimates: {
          decodeStepMs: d1,
          decodeExtraPerSequenceMs: (d8 - d1) / 7,
          prefillMsPerToken: prefillMs(acc, m, 1024) / 1024,
          loadMs: switchMs(acc, m),
          unloadMs: 5,
          kvSwapMsPerToken: kvSwapMsPerToken(acc, m),
        },
      };
    },
    loadMs: (id) => switchMs(acc, spec(id)),
    evictMs: () => 5,
    // Later chunks attend to the earlier ones: price the chunk as the difference.
    prefillMs: (id, from, to) => {
      const m = spec(id);
      return Math.max(prefillMs(acc, m, to) - (from > 0 ? prefillMs(acc, m, from) : 0), acc.stepOverheadMs);
    },
    decodeStepMs: (id, batch, ctx) => decodeStepMs(acc, spec(id), batch, ctx),
    kvSwapMs: (id, tokens) => 1 + tokens * kvSwapMsPerToken(acc, spec(id)),
  };
}
