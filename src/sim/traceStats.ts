/**
 * Per-request outcomes streamed into compact aggregates as tokens arrive, instead of keeping
 * every token's time (a 30,000-request trace of long answers is millions of tokens). Gives
 * the same SloReport as core/slo.ts `sloReport` over the full traces, to the bit: the same
 * comparisons on the same floats, the per-request scores summed in the same (arrival)
 * order, and the TTFT and gap values kept (typed arrays) for the percentiles and CDFs.
 *
 * It also knows, while a run is still going, when the run can no longer reach an attainment
 * or on-schedule target, so the planner can stop a fleet size that has already failed.
 */
import { reportFromCounts, type SloReport } from "../core/slo.ts";
import type { SloTargets } from "../core/types.ts";

/** A growable Float64Array. */
class Floats {
  data = new Float64Array(1024);
  length = 0;
  push(x: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = x;
  }
  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

/** The aggregates of finished runs: what the report and the planner read. */
export interface TraceSummary {
  /** Per request, in arrival order: whether it met the deadline SLO. */
  met: Uint8Array;
  /** Per request, in arrival order: whether it ended well (length or stop). */
  ok: Uint8Array;
  /** Per request, in arrival order: its on-schedule share. */
  onSchedule: Float64Array;
  /** First-token latencies of requests that produced a token (unordered). */
  ttftsMs: Float64Array;
  /** Gaps between consecutive tokens (unordered). */
  gapsMs: Float64Array;
  /** Gaps longer than their model's TBT target. */
  gapsOverTbt: number;
}

export class TraceStats {
  private readonly arrivalMs: Float64Array;
  private readonly expected: Int32Array;
  private readonly ttftMs: Float64Array;
  private readonly tbtMs: Float64Array;
  private readonly count: Int32Array;
  private readonly onTime: Int32Array;
  private readonly lastMs: Float64Array;
  private readonly okFlags: Uint8Array;
  /** A token came late, or the request ended short: it misses the deadline SLO. */
  private readonly missed: Uint8Array;
  private readonly ttfts = new Floats();
  private readonly gaps = new Floats();
  private over = 0;
  private misses = 0;
  /** Sum over requests of on-schedule share already lost (an upper bound on the final score). */
  private lost = 0;
  private readonly lostOf: Float64Array;
  private arrived = 0;

  /** `total`: how many requests the run has (slots are handed out in arrival order). */
  constructor(readonly total: number) {
    this.arrivalMs = new Float64Array(total);
    this.expected = new Int32Array(total);
    this.ttftMs = new Float64Array(total);
    this.tbtMs = new Float64Array(total);
    this.count = new Int32Array(total);
    this.onTime = new Int32Array(total);
    this.lastMs = new Float64Array(total);
    this.okFlags = new Uint8Array(total);
    this.missed = new Uint8Array(total);
    this.lostOf = new Float64Array(total);
  }

  /** A request arrived: its slot. */
  arrive(arrivalMs: number, expectedTokens: number, slo: SloTargets): number {
    const i = this.arrived++;
    this.arrivalMs[i] = arrivalMs;
    this.expected[i] = expectedTokens;
    this.ttftMs[i] = slo.ttftMs;
    this.tbtMs[i] = slo.tbtMs;
    return i;
  }

  token(i: number, atMs: number): void {
    const k = this.count[i]!;
    if (k === 0) this.ttfts.push(atMs - this.arrivalMs[i]!);
    else {
      const g = atMs - this.lastMs[i]!;
      this.gaps.push(g);
      if (g > this.tbtMs[i]!) this.over++;
    }
    this.lastMs[i] = atMs;
    this.count[i] = k + 1;
    if (atMs > this.arrivalMs[i]! + this.ttftMs[i]! + k * this.tbtMs[i]!) {
      this.miss(i);
      const e = this.expected[i]!;
      if (e > 0) this.lose(i, 1 / e);
    } else this.onTime[i]!++;
  }

  /** The request ended (ok: length or stop). */
  end(i: number, ok: boolean): void {
    this.okFlags[i] = ok ? 1 : 0;
    if (!this.meets(i)) this.miss(i);
    this.lose(i, 1 - this.share(i) - this.lostOf[i]!);
  }

  /**
   * The run can no longer reach `target` attainment, nor the on-schedule `scoreTarget`:
   * misses so far alone bring attainment below the target, and share already lost brings the
   * score below its target (with a margin for rounding: stopping is only ever conservative).
   */
  outOfReach(target: number, scoreTarget: number): boolean {
    const n = this.total;
    if (n === 0) return false;
    return (n - this.misses) / n < target && (n - this.lost) / n < scoreTarget - 1e-9;
  }

  private miss(i: number): void {
    if (!this.missed[i]) {
      this.missed[i] = 1;
      this.misses++;
    }
  }

  private lose(i: number, share: number): void {
    this.lostOf[i]! += share;
    this.lost += share;
  }

  /** core/slo.ts meetsDeadlineSlo, from the streamed counts. */
  private meets(i: number): boolean {
    const c = this.count[i]!;
    return this.okFlags[i] === 1 && c > 0 && c >= this.expected[i]! && this.onTime[i] === c;
  }

  /** core/slo.ts onScheduleFraction, from the streamed counts. */
  private share(i: number): number {
    const total = Math.max(this.count[i]!, this.expected[i]!);
    if (!this.okFlags[i] || total === 0) return 0;
    return this.onTime[i]! / total;
  }

  summary(): TraceSummary {
    const n = this.arrived;
    const met = new Uint8Array(n);
    const onSchedule = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      met[i] = this.meets(i) ? 1 : 0;
      onSchedule[i] = this.share(i);
    }
    return { met, ok: this.okFlags.slice(0, n), onSchedule, ttftsMs: this.ttfts.values(), gapsMs: this.gaps.values(), gapsOverTbt: this.over };
  }
}

/** Runs over disjoint requests (dedicated's per-model runs) as one, in the given order. */
export function mergeSummaries(parts: TraceSummary[]): TraceSummary {
  const cat = <A extends Uint8Array | Float64Array>(pick: (p: TraceSummary) => A, make: (n: number) => A): A => {
    const out = make(parts.reduce((s, p) => s + pick(p).length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(pick(p), at);
      at += pick(p).length;
    }
    return out;
  };
  return {
    met: cat(
      (p) => p.met,
      (n) => new Uint8Array(n),
    ),
    ok: cat(
      (p) => p.ok,
      (n) => new Uint8Array(n),
    ),
    onSchedule: cat(
      (p) => p.onSchedule,
      (n) => new Float64Array(n),
    ),
    ttftsMs: cat(
      (p) => p.ttftsMs,
      (n) => new Float64Array(n),
    ),
    gapsMs: cat(
      (p) => p.gapsMs,
      (n) => new Float64Array(n),
    ),
    gapsOverTbt: parts.reduce((s, p) => s + p.gapsOverTbt, 0),
  };
}

/** core/slo.ts `sloReport` over the streamed aggregates: the same numbers, to the bit. */
export function summaryReport(s: TraceSummary, durationMs: number): SloReport {
  const n = s.met.length;
  let met = 0;
  let completed = 0;
  let onSchedule = 0;
  for (let i = 0; i < n; i++) {
    met += s.met[i]!;
    completed += s.ok[i]!;
    onSchedule += s.onSchedule[i]!;
  }
  return reportFromCounts({ requests: n, completed, met, onSchedule, ttftsMs: s.ttftsMs, gapsMs: s.gapsMs, gapsOverTbt: s.gapsOverTbt }, durationMs);
}
