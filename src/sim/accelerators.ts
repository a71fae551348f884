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
  /** Fitted: share of peak compute dense matrix products reach. */
  computeEfficiency: number;
  /** Fitted: fixed time of every step (launches, scheduling), ms. */
  stepOverheadMs: number;
  /** Fitted: added per sequence of a decode batch (sampling, bookkeeping), ms. */
  perSequenceMs: number;
}

// Catalog accelerators take the same, shared factors (fitted across the profiled A10, A100,
// H100 and H800): their step times follow from their specs (bandwidth, compute) alone, so an
// accelerator without profiles (H20, A100-40G, L40S) is predicted about as well as a profiled
// one left out of the fit (calibration.ts `leaveOneOut`, BENCHMARKS.md § 4).
export const SHARED_ACCELERATOR_FACTORS = { bandwidthEfficiency: 0.844, computeEfficiency: 0.69, stepOverheadMs: 1.59, perSequenceMs: 0.069 };
const shared = SHARED_ACCELERATOR_FACTORS;

export const ACCELERATORS: AcceleratorSpec[] = [
  { id: "H100", bf16Tflops: 989, fp8Tflops: 1979, memoryGB: 80, memoryBandwidthTBs: 3.35, hostLinkGBs: 45, ...shared },
  { id: "H800", bf16Tflops: 989, fp8Tflops: 1979, memoryGB: 80, memoryBandwidthTBs: 3.35, hostLinkGBs: 45, ...shared },
  // NVIDIA H20 (public datasheet): 148 TFLOPS dense BF16, 296 FP8, 96 GB HBM3 at 4.0 TB/s,
  // NVLink 900 GB/s, PCIe Gen5 x16 host link.
  { id: "H20", bf16Tflops: 148, fp8Tflops: 296, memoryGB: 96, memoryBandwidthTBs: 4.0, hostLinkGBs: 45, ...shared },
  { id: "A100-40G", bf16Tflops: 312, fp8Tflops: 0, memoryGB: 40, memoryBandwidthTBs: 1.555, hostLinkGBs: 22, ...shared },
  { id: "A100", bf16Tflops: 312, fp8Tflops: 0, memoryGB: 80, memoryBandwidthTBs: 2.04, hostLinkGBs: 22, ...shared },
  // Measured beats guessed: A10's prefill reaches 58% of its datasheet peak, not the shared
  // 69% (150 W power cap, 6 MB of L2), which nothing in its specs predicts; its profiles set it.
  { id: "A10", bf16Tflops: 125, fp8Tflops: 0, memoryGB: 24, memoryBandwidthTBs: 0.6, hostLinkGBs: 22, ...shared, computeEfficiency: 0.58 },
  { id: "L40S", bf16Tflops: 362, fp8Tflops: 733, memoryGB: 48, memoryBandwidthTBs: 0.864, hostLinkGBs: 22, ...shared },
];

export function findAccelerator(id: string): AcceleratorSpec | undefined {
  return ACCELERATORS.find((a) => a.id.toLowerCase() === id.toLowerCase());
}
