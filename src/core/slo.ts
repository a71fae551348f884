/**
 * SLO metrics, as defined in ../shared/docs/scheduling.md, shared by the server, the load
 * generator and the simulator so every report means the same thing.
 *
 * - Deadline SLO: token k (0 = first) arrives by arrival + TTFT + k * TBT.
 * - Attainment: fraction of ALL requests (failed and rejected count as misses) meeting it.
 * - Goodput: requests per second that meet it.
 * - On-schedule score (the reference system's own measure, next to attainment): per request,
 *   the fraction of its output tokens that arrived by their deadlines (token 0 by the TTFT
 *   deadline); tokens it should have produced and never did count as late, and a failed or
 *   rejected request scores 0. The score is the mean over all requests, met when it reaches
 *   `ON_SCHEDULE_TARGET` (0.9). It forgives a late token where attainment does not.
 */
import { nearestRanks } from "./nearestRank.ts";
import type { SloTargets } from "./types.ts";

export interface RequestTrace {
  modelId: string;
  arrivalMs: number;
  /** Arrival time of each output token, in order. */
  tokenTimesMs: number[];
  /** Tokens the request should have produced (a request that ended short by error missed). */
  expectedTokens?: number;
  ok: boolean;
}

export function meetsDeadlineSlo(t: RequestTrace, slo: SloTargets): boolean {
  if (!t.ok || t.tokenTimesMs.length === 0) return false;
  if (t.expectedTokens !== undefined && t.tokenTimesMs.length < t.expectedTokens) return false;
  for (let k = 0; k < t.tokenTimesMs.length; k++) if (t.tokenTimesMs[k]! > t.arrivalMs + slo.ttftMs + k * slo.tbtMs) return false;
  return true;
}

/** The on-schedule score a run must reach to count as meeting it (the reference system's 0.9). */
export const ON_SCHEDULE_TARGET = 0.9;

/**
 * Fraction of the request's output tokens that arrived by their deadlines: expected tokens
 * never produced count as late; a failed request, or one that produced nothing, scores 0.
 */
export function onScheduleFraction(t: RequestTrace, slo: SloTargets): number {
  const total = Math.max(t.tokenTimesMs.length, t.expectedTokens ?? 0);
  if (!t.ok || total === 0) return 0;
  let onTime = 0;
  for (let k = 0; k < t.tokenTimesMs.length; k++) if (t.tokenTimesMs[k]! <= t.arrivalMs + slo.ttftMs + k * slo.tbtMs) onTime++;
  return onTime / total;
}

/** The lower median (a measured value, never an average of two); 0 for no values. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

export function percentile(values: number[], p: number): number {
  return percentileOfSorted(Float64Array.from(values).sort(), p);
}

/** Nearest-rank percentile of values already sorted ascending. */
function percentileOfSorted(s: ArrayLike<number>, p: number): number {
  if (s.length === 0) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/** An empirical CDF as `points` (value, percentile) pairs, values rounded to 0.1. */
export function cdfPoints(values: ArrayLike<number>, points = 50): [number, number][] {
  if (values.length === 0) return [];
  // A typed array sorts numerically, and much faster than an array of numbers.
  const s = Float64Array.from(values).sort();
  const out: [number, number][] = [];
  for (let i = 1; i <= points; i++) {
    const p = (i / points) * 100;
    const k = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
    out.push([Math.round(s[k]! * 10) / 10, p]);
  }
  return out;
}

export interface SloReport {
  requests: number;
  completed: number;
  met: number;
  attainment: number;
  /** Requests per second meeting the SLO, over `durationMs`. */
  goodput: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  tbtP50Ms: number;
  tbtP99Ms: number;
  /** Share of token gaps longer than the TBT target (burstiness). */
  gapsOverTbt: number;
  /** Mean over requests of the share of tokens on schedule (the reference system's score; met at ≥ 0.9). */
  onScheduleScore: number;
}

export function sloReport(traces: RequestTrace[], sloOf: (modelId: string) => SloTargets, durationMs: number): SloReport {
  const ttfts: number[] = [];
  const gaps: number[] = [];
  let over = 0;
  let met = 0;
  let completed = 0;
  let onSchedule = 0;
  for (const t of traces) {
    const slo = sloOf(t.modelId);
    if (t.ok) completed++;
    onSchedule += onScheduleFraction(t, slo);
    if (meetsDeadlineSlo(t, slo)) met++;
    if (t.tokenTimesMs.length > 0) ttfts.push(t.tokenTimesMs[0]! - t.arrivalMs);
    for (let k = 1; k < t.tokenTimesMs.length; k++) {
      const g = t.tokenTimesMs[k]! - t.tokenTimesMs[k - 1]!;
      gaps.push(g);
      if (g > slo.tbtMs) over++;
    }
  }
  return reportFromCounts({ requests: traces.length, completed, met, onSchedule, ttftsMs: ttfts, gapsMs: gaps, gapsOverTbt: over }, durationMs);
}

/** What a report is made of, however the requests were counted (whole traces, or streamed). */
export interface SloCounts {
  requests: number;
  completed: number;
  met: number;
  /** Sum over requests of the share of tokens on schedule. */
  onSchedule: number;
  ttftsMs: ArrayLike<number>;
  gapsMs: ArrayLike<number>;
  /** Gaps longer than their TBT target. */
  gapsOverTbt: number;
}

export function reportFromCounts(c: SloCounts, durationMs: number): SloReport {
  const n = c.requests;
  // Selected, not sorted: millions of gaps in a long simulation (core/nearestRank.ts).
  const [ttftP50Ms, ttftP99Ms] = nearestRanks(c.ttftsMs, [50, 99]);
  const [tbtP50Ms, tbtP99Ms] = nearestRanks(c.gapsMs, [50, 99]);
  return {
    requests: n,
    completed: c.completed,
    met: c.met,
    attainment: n === 0 ? 1 : c.met / n,
    goodput: durationMs > 0 ? c.met / (durationMs / 1000) : 0,
    ttftP50Ms: ttftP50Ms!,
    ttftP99Ms: ttftP99Ms!,
    tbtP50Ms: tbtP50Ms!,
    tbtP99Ms: tbtP99Ms!,
    gapsOverTbt: c.gapsMs.length === 0 ? 0 : c.gapsOverTbt / c.gapsMs.length,
    onScheduleScore: n === 0 ? 1 : c.onSchedule / n,
  };
}
