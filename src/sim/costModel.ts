/**
 * Step-time and switch-cost model of an accelerator running a model (vLLM-like engine, fp16,
 * no CUDA graphs), built from what the hardware is so that an accelerator's specs alone give
 * its step times:
 *
 * - Every step pays a fixed host cost (scheduling, sampling set-up) and a launch cost per
 *   layer, more for MoE layers (router, expert dispatch). These do not shrink with
 *   bandwidth or compute: they are why a faster memory does not make batch-1 decode faster
 *   in proportion.
 * - Decode reads the weights the batch touches (MoE: the expected distinct experts of `b`
 *   tokens choosing `k` of `E`) and every sequence's KV, at a share of peak bandwidth; or, if
 *   longer, runs the matrix products, which tensor cores tile: a batch below the tile costs a
 *   full tile. On an accelerator with little compute for its bandwidth (H20) that floor, not
 *   the weight read, sets small-batch decode.
 * - Prefill runs 2 FLOPs per active parameter per token (MoE experts no faster than their
 *   weights stream: each expert sees a small share of the batch) plus causal attention over
 *   the prompt, or reads the weights for tiny prompts.
 * - Each sequence of a step costs host time plus device work that follows compute.
 * - A switch moves the weights over the host link (from a host-memory cache) plus a fixed
 *   engine cost; KV swaps move bytes over the same link.
 *
 * The coefficients are shared by all accelerators (SHARED_COEFFICIENTS, and the four factors
 * each AcceleratorSpec carries), fitted across the measured vLLM profiles of
 * ../shared/data/vllm-step-profiles.csv; calibration.ts checks them by leaving each
 * accelerator out of the fit in turn and predicting it.
 */
import type { AcceleratorSpec } from "./accelerators.ts";
import { BYTES_PER_PARAM, kvBytesPerToken, weightBytes, type SimModelSpec } from "./modelPresets.ts";

/** Coefficients that hold on every accelerator (not the four an AcceleratorSpec carries). */
export interface SharedCoefficients {
  /** Launch cost of one transformer layer per step, ms. */
  layerMs: number;
  /** Extra launch cost of one MoE layer per step (router, dispatch), ms. */
  moeLayerMs: number;
  /** Share of peak bandwidth the paged-attention KV read reaches. */
  kvEfficiency: number;
  /** Share of peak compute prefill attention reaches. */
  attentionEfficiency: number;
  /**
   * Device work per sequence per step (sampling, per-sequence attention blocks), in GFLOP at
   * peak compute: why a decode batch grows dearer per sequence on small accelerators.
   */
  sequenceGflop: number;
  /**
   * FLOPs an MoE expert product does per byte of expert weights it streams: each expert sees
   * a small share of the batch, so its tiles re-read the weights and the product runs at
   * flops / (this × bandwidth) when that is slower than the tensor cores (Hopper: yes).
   */
  moeFlopsPerByte: number;
}

/**
 * Rows a tensor-core matrix product costs at least: a decode batch below this costs as much
 * compute as this many rows (tiles are padded). Not identifiable from the profiled
 * accelerators (all have compute to spare at batch 1); set from H20's public batch-1 decode
 * (simulator.md: Qwen3-8B 12.2 ms measured against 4.1 ms of ideal weight read; this gives
 * 11.3 ms) while larger dense models stay near bandwidth-bound (Qwen2.5-14B within 1.2× of
 * H800).
 */
export const GEMM_TILE_ROWS = 44;

/**
 * Fitted across A10, A100, H100 and H800 (calibration.ts `fitCoefficients`; BENCHMARKS.md § 4
 * has the leave-one-accelerator-out check).
 */
export const SHARED_COEFFICIENTS: SharedCoefficients = {
  layerMs: 0.067,
  moeLayerMs: 0.42,
  kvEfficiency: 1,
  attentionEfficiency: 0.276,
  sequenceGflop: 19.4,
  moeFlopsPerByte: 118,
};

function peakFlopsPerMs(acc: AcceleratorSpec, m: SimModelSpec): number {
  const tflops = m.format === "fp8" && acc.fp8Tflops > 0 ? acc.fp8Tflops : acc.bf16Tflops;
  return tflops * 1e9;
}

function bytesPerMs(acc: AcceleratorSpec): number {
  return acc.memoryBandwidthTBs * 1e9;
}

/** Expected distinct experts (as a share of all) that `tokens` tokens touch, each choosing `used` of `count`. */
export function expertCoverage(count: number, used: number, tokens: number): number {
  return 1 - (1 - used / count) ** Math.max(1, tokens);
}

/** Parameters outside the experts (attention, embeddings, shared experts): dense = active − experts' share. */
export function nonExpertParams(m: SimModelSpec): number {
  if (!m.experts || m.totalParams === m.activeParams) return m.totalParams;
  const share = m.experts.used / m.experts.count;
  return Math.max(0, (m.activeParams - m.totalParams * share) / (1 - share));
}

/** Weight bytes a step over `tokens` tokens reads: MoE batches touch more experts. */
export function touchedWeightBytes(m: SimModelSpec, tokens: number): number {
  const bpp = BYTES_PER_PARAM[m.format];
  if (!m.experts || m.totalParams === m.activeParams) return m.totalParams * bpp;
  const dense = nonExpertParams(m);
  return (dense + (m.totalParams - dense) * expertCoverage(m.experts.count, m.experts.used, tokens)) * bpp;
}

function fixedMs(acc: AcceleratorSpec, m: SimModelSpec, c: SharedCoefficients): number {
  return acc.stepOverheadMs + m.layers * c.layerMs + (m.experts ? m.layers * c.moeLayerMs : 0);
}

/** Per-sequence cost of a step: host bookkeeping plus device work that follows compute. */
function sequencesMs(acc: AcceleratorSpec, m: SimModelSpec, sequences: number, c: SharedCoefficients): number {
  return sequences * (acc.perSequenceMs + (c.sequenceGflop * 1e9) / peakFlopsPerMs(acc, m));
}

/** Matrix-product time of `rows` token rows: the dense part at the tensor cores' rate, experts at the slower of that and their weight stream. */
function matmulMs(acc: AcceleratorSpec, m: SimModelSpec, rows: number, c: SharedCoefficients): number {
  const peak = peakFlopsPerMs(acc, m);
  const dense = m.experts ? nonExpertParams(m) : m.activeParams;
  const expert = m.activeParams - dense;
  const streamed = bytesPerMs(acc) * acc.bandwidthEfficiency;
  const expertMs = Math.max((2 * expert * rows) / (peak * acc.computeEfficiency), (2 * expert * rows) / (c.moeFlopsPerByte * streamed));
  return (2 * dense * rows) / (peak * acc.computeEfficiency) + expertMs;
}

/** One decode step of `batch` sequences holding `contextTokens` tokens each on average. */
export function decodeStepMs(acc: AcceleratorSpec, m: SimModelSpec, batch: number, contextTokens: number, c = SHARED_COEFFICIENTS): number {
  const weightsMs = touchedWeightBytes(m, batch) / (bytesPerMs(acc) * acc.bandwidthEfficiency);
  const computeMs = matmulMs(acc, m, Math.max(batch, GEMM_TILE_ROWS), c);
  const kvMs = (batch * contextTokens * kvBytesPerToken(m)) / (bytesPerMs(acc) * c.kvEfficiency);
  return fixedMs(acc, m, c) + Math.max(weightsMs, computeMs) + kvMs + sequencesMs(acc, m, batch, c);
}

/** Prefill of `sequences` prompts of `promptTokens` tokens each, in one batch. */
export function prefillMs(acc: AcceleratorSpec, m: SimModelSpec, promptTokens: number, sequences = 1, c = SHARED_COEFFICIENTS): number {
  const tokens = promptTokens * sequences;
  const attentionFlops = 2 * m.layers * m.hiddenSize * promptTokens * promptTokens * sequences;
  const computeMs = matmulMs(acc, m, Math.max(tokens, GEMM_TILE_ROWS), c) + attentionFlops / (peakFlopsPerMs(acc, m) * c.attentionEfficiency);
  const weightsMs = touchedWeightBytes(m, tokens) / (bytesPerMs(acc) * acc.bandwidthEfficiency);
  return fixedMs(acc, m, c) + Math.max(computeMs, weightsMs) + sequencesMs(acc, m, sequences, c);
}

/** Fixed cost of a switch with the engine kept alive (scheduling.md, simulator.md: 0.1–0.3 s). */
export const ENGINE_SWITCH_MS = 150;

export function switchMs(acc: AcceleratorSpec, m: SimModelSpec): number {
  return ENGINE_SWITCH_MS + (weightBytes(m) / (acc.hostLinkGBs * 1e9)) * 1000;
}

export function kvSwapMsPerToken(acc: AcceleratorSpec, m: SimModelSpec): number {
  return (kvBytesPerToken(m) / (acc.hostLinkGBs * 1e9)) * 1000;
}
