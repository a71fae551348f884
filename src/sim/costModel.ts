/**
 * Step-time and switch-cost model of an accelerator running a model (vLLM-like engine).
 *
 * - Decode is bandwidth-bound at small batches: each step reads the weights it needs (MoE:
 *   only the experts the batch touches) and every sequence's KV; compute takes over at large
 *   batches. Plus a fixed cost per step and per sequence.
 * - Prefill is compute-bound: 2 FLOPs per active parameter per token plus causal attention,
 *   or the weight read for tiny prompts, whichever is longer.
 * - A switch moves the weights over the host link (from a host-memory cache) plus a fixed
 *   engine cost; KV swaps move bytes over the same link.
 *
 * Efficiency factors per accelerator are fitted to ../shared/data/vllm-step-profiles.csv
 * (calibration.ts reports the error).
 */
import type { AcceleratorSpec } from "./accelerators.ts";
import { decodeWeightBytes, kvBytesPerToken, weightBytes, type SimModelSpec } from "./modelPresets.ts";

function peakFlops(acc: AcceleratorSpec, m: SimModelSpec): number {
  const tflops = m.format === "fp8" && acc.fp8Tflops > 0 ? acc.fp8Tflops : acc.bf16Tflops;
  return tflops * 1e12;
}

function bandwidth(acc: AcceleratorSpec): number {
  return acc.memoryBandwidthTBs * 1e12 * acc.bandwidthEfficiency;
}

/** One decode step of `batch` sequences holding `contextTokens` tokens each on average. */
export function decodeStepMs(acc: AcceleratorSpec, m: SimModelSpec, batch: number, contextTokens: number): number {
  const weightsMs = (decodeWeightBytes(m, batch) / bandwidth(acc)) * 1000;
  const computeMs = ((2 * m.activeParams * batch) / (peakFlops(acc, m) * acc.computeEfficiency)) * 1000;
  const kvMs = ((batch * contextTokens * kvBytesPerToken(m)) / bandwidth(acc)) * 1000;
  return acc.stepOverheadMs + Math.max(weightsMs, computeMs) + kvMs + batch * acc.perSequenceMs;
}

/** Prefill of `sequences` prompts of `promptTokens` tokens each, in one batch. */
export function prefillMs(acc: AcceleratorSpec, m: SimModelSpec, promptTokens: number, sequences = 1): number {
  const tokens = promptTokens * sequences;
  const flops = 2 * m.activeParams * tokens + 2 * m.layers * m.hiddenSize * promptTokens * promptTokens * sequences;
  const computeMs = (flops / (peakFlops(acc, m) * acc.computeEfficiency)) * 1000;
  const weightsMs = (decodeWeightBytes(m, tokens) / bandwidth(acc)) * 1000;
  return acc.stepOverheadMs + Math.max(computeMs, weightsMs) + sequences * acc.perSequenceMs;
}

/** Fixed cost of a switch with the engine kept alive (scheduling.md, simulator.md: 0.1–0.3 s). */
export const ENGINE_SWITCH_MS = 150;

export function switchMs(acc: AcceleratorSpec, m: SimModelSpec): number {
  return ENGINE_SWITCH_MS + (weightBytes(m) / (acc.hostLinkGBs * 1e9)) * 1000;
}

export function kvSwapMsPerToken(acc: AcceleratorSpec, m: SimModelSpec): number {
  return (kvBytesPerToken(m) / (acc.hostLinkGBs * 1e9)) * 1000;
}
