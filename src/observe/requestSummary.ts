/**
 * One finished request, reduced to what metrics, logs and the dashboard report about it,
 * scored with the deadline SLO of `core/slo.ts` so that every view agrees.
 */
import { meetsDeadlineSlo } from "../core/slo.ts";
import type { RequestOutcome } from "../runtime/Pool.ts";

export type OutcomeLabel = "stop" | "length" | "cancelled" | "failed" | "rejected";

export interface RequestSummary {
  id: string;
  modelId: string;
  outcome: OutcomeLabel;
  /**
   * Deadline SLO: failed and rejected requests are misses; a request its client cancelled
   * is not scored (`null`): nobody was left waiting for it.
   */
  sloMet: boolean | null;
  promptTokens: number;
  completionTokens: number;
  ttftMs: number | null;
  e2eMs: number | null;
  maxGapMs: number | null;
  gapsMs: number[];
  error?: string;
}

export function summarize(o: RequestOutcome): RequestSummary {
  const outcome: OutcomeLabel = o.reason === "error" ? "failed" : o.reason;
  const ok = o.reason === "stop" || o.reason === "length";
  const t = o.tokenTimesMs;
  const gapsMs: number[] = [];
  let maxGapMs: number | null = null;
  for (let k = 1; k < t.length; k++) {
    const g = t[k]! - t[k - 1]!;
    gapsMs.push(g);
    if (maxGapMs === null || g > maxGapMs) maxGapMs = g;
  }
  return {
    id: o.id,
    modelId: o.modelId,
    outcome,
    sloMet: outcome === "cancelled" ? null : meetsDeadlineSlo({ modelId: o.modelId, arrivalMs: o.arrivalMs, tokenTimesMs: t, ok }, o.slo),
    promptTokens: o.promptTokens,
    completionTokens: t.length,
    ttftMs: t.length > 0 ? t[0]! - o.arrivalMs : null,
    e2eMs: t.length > 0 ? t[t.length - 1]! - o.arrivalMs : null,
    maxGapMs,
    gapsMs,
    ...(o.error ? { error: o.error } : {}),
  };
}
