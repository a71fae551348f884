/**
 * Admission control: refuse a request up front when the pool is predicted to keep it
 * waiting far past its TTFT target, so the client can retry elsewhere or later instead of
 * timing out (the API answers 429 with `Retry-After`).
 */
import type { ModelId, SloTargets } from "../core/types.ts";
import type { Predictor } from "./Predictor.ts";
import { mayServe, type RequestRecord, type SchedulerView } from "./state.ts";

export type SubmitResult = { accepted: true } | { accepted: false; retryAfterMs: number; reason: string };

/**
 * The answer to a new request of this model: refused when its predicted wait exceeds `ttftFactor`
 * times its TTFT target. A factor of 0 admits everything.
 */
export function admit(
  view: SchedulerView,
  predictor: Predictor,
  modelId: ModelId,
  slo: SloTargets,
  ttftFactor: number,
  startsBefore?: (r: RequestRecord) => boolean,
): SubmitResult {
  if (ttftFactor <= 0) return { accepted: true };
  const waitMs = predictedWaitMs(view, predictor, modelId, startsBefore);
  if (waitMs > slo.ttftMs * ttftFactor)
    return { accepted: false, retryAfterMs: Math.ceil(waitMs - slo.ttftMs), reason: `predicted wait ${Math.round(waitMs)} ms exceeds the TTFT target` };
  return { accepted: true };
}

/**
 * Rough wait a new request of this model would see: queued and running work spread over
 * devices. With `startsBefore` (fair sharing between tenants), queued requests that would
 * start after the new one do not count.
 */
export function predictedWaitMs(view: SchedulerView, predictor: Predictor, modelId: ModelId, startsBefore?: (r: RequestRecord) => boolean): number {
  let workMs = 0;
  const models = new Set<ModelId>();
  for (const r of view.requests.values()) {
    const m = r.spec.modelId;
    if (startsBefore && r.phase === "queued" && !startsBefore(r)) continue;
    if (r.phase === "queued" || r.phase === "prefilling") workMs += predictor.prefillMs(m, r.spec.promptTokens - r.prefilledTokens);
    workMs += predictor.decodeStepMs(m, 1) * (r.spec.maxOutputTokens - r.generatedTokens);
    models.add(m);
  }
  models.add(modelId);
  const devs = [...view.devices.values()].filter((d) => !d.down && mayServe(d, modelId));
  for (const m of models) if (!devs.some((d) => d.resident.has(m))) workMs += predictor.loadMs(m);
  return workMs / Math.max(1, devs.length);
}
