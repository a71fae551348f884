/**
 * How many decode steps one command runs: as many as fit the time slice, never past the
 * request closest to its output limit, at least one.
 */
import type { RequestRecord } from "./state.ts";

export function decodeSteps(batch: RequestRecord[], stepMs: number, sliceMs: number, cap = Infinity): number {
  let remaining = Infinity;
  for (const r of batch) remaining = Math.min(remaining, r.spec.maxOutputTokens - r.generatedTokens);
  const bySlice = Math.floor(sliceMs / Math.max(stepMs, 1e-6));
  return Math.max(1, Math.min(remaining, bySlice, cap));
}
