/**
 * The late-wait cap: a request that still waits for a device long after its TTFT deadline
 * has missed its SLO, and serving it later takes the device from requests that can still
 * meet theirs. Past the cap (`lateWaitCapFactor` × its TTFT target beyond the deadline) the
 * scheduler ends it with an error and a retry time (the API answers 503 with `Retry-After`).
 *
 * Only requests no device has started are ended. A request being prefilled or decoded keeps
 * going, however late: the work already done (and, once decoding, the text already streamed)
 * would be thrown away, and the policy already serves it after every on-time request.
 */
import type { FinishedRequest, RequestId } from "../core/types.ts";
import { predictedWaitMs } from "./admission.ts";
import type { Predictor } from "./Predictor.ts";
import type { RequestRecord, SchedulerView } from "./state.ts";

/** A request the cap ended: `reason` "error", and when the client might try again. */
export interface ExpiredRequest extends FinishedRequest {
  retryAfterMs: number;
}

export class LateWaitCap {
  /** No waiting request is due before this: most calls cost one comparison. */
  private nextDueMs = Infinity;

  constructor(private readonly factor: number) {}

  /** The time by which a waiting request must have started. */
  dueMs(r: RequestRecord): number {
    return r.spec.arrivalMs + r.slo.ttftMs * (1 + this.factor);
  }

  /** A request began to wait. */
  noteWaiting(r: RequestRecord): void {
    if (Number.isFinite(this.factor)) this.nextDueMs = Math.min(this.nextDueMs, this.dueMs(r));
  }

  /** Waiting requests past their cap, oldest first. */
  overdue(view: SchedulerView, nowMs: number): RequestRecord[] {
    if (nowMs <= this.nextDueMs) return [];
    const out: RequestRecord[] = [];
    let next = Infinity;
    for (const r of view.waiting) {
      const due = this.dueMs(r);
      if (nowMs > due) out.push(r);
      else next = Math.min(next, due);
    }
    this.nextDueMs = next;
    return out;
  }
}

/**
 * End every waiting request past its cap through `end` (the scheduler's one ending path).
 * The retry time is the wait a new request of the model would now be predicted to see,
 * beyond its TTFT target, and at least a second.
 */
export function expireLate(view: SchedulerView, predictor: Predictor, cap: LateWaitCap, nowMs: number, end: (id: RequestId, error: string) => FinishedRequest): ExpiredRequest[] {
  const overdue = cap.overdue(view, nowMs);
  if (overdue.length === 0) return [];
  const ended = overdue.map((r) => ({
    r,
    f: end(
      r.spec.id,
      `Request waited ${Math.round(nowMs - r.spec.arrivalMs)} ms for a device without starting, past its TTFT target of ${r.slo.ttftMs} ms; the server is overloaded`,
    ),
  }));
  const retry = new Map<string, number>();
  return ended.map(({ r, f }) => {
    const m = r.spec.modelId;
    if (!retry.has(m)) retry.set(m, Math.max(1000, predictedWaitMs(view, predictor, m, nowMs, r.spec.promptTokens, r.slo) - r.slo.ttftMs));
    return { ...f, retryAfterMs: retry.get(m)! };
  });
}
