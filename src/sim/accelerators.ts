/**
 * Accelerator catalog (../shared/docs/simulator.md) with the efficiency factors of the cost
 * model, fitted to the measured vLLM step profiles in ../shared/data (see costModel.ts).
 * Users extend it with their own entries (config or `pitcher profile` output).
 */
export interface AcceleratorSpec {
  id: string;
  bf16Tflops: number;
  /** 0 when the accelerator has no FP8 tensor cores. */
  fp8Tflops: number;
  memoryGB: number;
  memoryBandwidthTBs: number;
  /** Achieved host-to-device copy, GB/s (pinned memory). */
  hostLinkGBs: number;
  /** Fitted: share of peak bandwidth a decode step reaches. */
  bandwidthEfficiency: number;
  /** Fitted: share of peak compute a prefill reaches. */
  computeEfficiency: number;
  /** Fitted: fixed time of every step (launches, scheduling), ms. */
  stepOverheadMs: number;
  /** Fitted: added per sequence of a decode batch (sampling, bookkeeping), ms. */
  perSequenceMs: number;
}

// Fitted by grid search to the profiles (median abs. error of prefill and decode, see
// calibration.ts): H800, H100, A100 (80 GB) and A10 are measured. H20 takes H800's factors
// (same Hopper memory system), A100-40G takes A100's, L40S takes A10's (no profile exists).
const h800 = { bandwidthEfficiency: 0.8, computeEfficiency: 0.65, stepOverheadMs: 3, perSequenceMs: 0.1 };
const h100 = { bandwidthEfficiency: 0.9, computeEfficiency: 0.75, stepOverheadMs: 4, perSequenceMs: 0.1 };
const a100 = { bandwidthEfficiency: 0.65, computeEfficiency: 0.75, stepOverheadMs: 2, perSequenceMs: 0.1 };
const a10 = { bandwidthEfficiency: 0.7, computeEfficiency: 0.55, stepOverheadMs: 0, perSequenceMs: 0.12 };

export const ACCELERATORS: AcceleratorSpec[] = [
  { id: "H100", bf16Tflops: 989, fp8Tflops: 1979, memoryGB: 80, memoryBandwidthTBs: 3.35, hostLinkGBs: 45, ...h100 },
  { id: "H800", bf16Tflops: 989, fp8Tflops: 1979, memoryGB: 80, memoryBandwidthTBs: 3.35, hostLinkGBs: 45, ...h800 },
  { id: "H20", bf16Tflops: 148, fp8Tflops: 296, memoryGB: 96, memoryBandwidthTBs: 4.0, hostLinkGBs: 45, ...h800 },
  { id: "A100-40G", bf16Tflops: 312, fp8Tflops: 0, memoryGB: 40, memoryBandwidthTBs: 1.555, hostLinkGBs: 22, ...a100 },
  { id: "A100", bf16Tflops: 312, fp8Tflops: 0, memoryGB: 80, memoryBandwidthTBs: 2.04, hostLinkGBs: 22, ...a100 },
  { id: "A10", bf16Tflops: 125, fp8Tflops: 0, memoryGB: 24, memoryBandwidthTBs: 0.6, hostLinkGBs: 22, ...a10 },
  { id: "L40S", bf16Tflops: 362, fp8Tflops: 733, memoryGB: 48, memoryBandwidthTBs: 0.864, hostLinkGBs: 22, ...a10 },
];

export function findAccelerator(id: string): AcceleratorSpec | undefined {
  return ACCELERATORS.find((a) => a.id.toLowerCase() === id.toLowerCase());
}
