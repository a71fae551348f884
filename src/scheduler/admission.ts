/**
 * Admission control: refuse a request up front when the pool is predicted to keep it
 * waiting past its TTFT target, so the client can retry elsewhere or later instead of
 * timing out (the API answers 429 with `Retry-After`).
 */
import type { ModelId, RequestSpec, SloTargets } from "../core/types.ts";
import type { Predictor } from "./Predictor.ts";
import { hasMissedSlo, mayServe, type RequestRecord, type SchedulerView } from "./state.ts";

export type SubmitResult = { accepted: true } | { accepted: false; retryAfterMs: number; reason: string };

/**
 * The answer to a new request of this model: refused when its predicted wait exceeds `ttftFactor`
 * times its TTFT target. A factor of 0 admits everything.
 */
export function admit(
  view: SchedulerView,
  predictor: Predictor,
  spec: RequestSpec,
  slo: SloTargets,
  ttftFactor: number,
  nowMs: number,
  startsBefore?: (r: RequestRecord) => boolean,
): SubmitResult {
  if (ttftFactor <= 0) return { accepted: true };
  const waitMs = predictedWaitMs(view, predictor, spec.modelId, nowMs, spec.promptTokens, slo, startsBefore);
  // Retry once the work ahead has shrunk below the threshold.
  if (waitMs > slo.ttftMs * ttftFactor)
    return { accepted: false, retryAfterMs: Math.ceil(waitMs - slo.ttftMs * ttftFactor), reason: `predicted wait ${Math.round(waitMs)} ms exceeds the TTFT target` };
  return { accepted: true };
}

/**
 * The wait a new request of this model would see before its first token: the device time the
 * pool owes, by the new request's TTFT deadline, to requests that can still meet their SLO,
 * spread over the devices that may serve the model. What is owed: the prompts of on-time
 * requests not yet prefilled (the new one's included), the decode steps that on-time
 * requests' deadlines demand within the window (batched per model, as the policy runs them;
 * tokens produced ahead of their deadlines owe nothing), and a load of every model with such
 * work that no live device holds.
 *
 * Requests that have missed their SLO owe nothing: the policy serves them after every on-time
 * request (and the late-wait cap ends those still waiting), so they do not delay a new one.
 * Counting them, and counting every remaining token at a batch of one, made the first
 * version of this estimate refuse work the pool would have served in time (BENCHMARKS.md).
 * With `startsBefore` (fair sharing between tenants), queued requests that would start after
 * the new one do not count.
 */
export function predictedWaitMs(
  view: SchedulerView,
  predictor: Predictor,
  modelId: ModelId,
  nowMs: number,
  promptTokens: number,
  slo: SloTargets,
  startsBefore?: (r: RequestRecord) => boolean,
): number {
  const horizonMs = nowMs + slo.ttftMs;
  let workMs = predictor.prefillMs(modelId, promptTokens);
  const models = new Set<ModelId>([modelId]);
  // Per model: decoding requests and the most steps any of them owes by the horizon.
  const decode = new Map<ModelId, { n: number; steps: number }>();
  for (const r of view.requests.values()) {
    if (hasMissedSlo(r, nowMs)) continue;
    const m = r.spec.modelId;
    if (startsBefore && r.phase === "queued" && !startsBefore(r)) continue;
    models.add(m);
    if (r.phase === "queued" || r.phase === "prefilling") workMs += predictor.prefillMs(m, r.spec.promptTokens - r.prefilledTokens);
    const owed = tokensOwed(r, horizonMs);
    if (owed <= 0) continue;
    const d = decode.get(m) ?? { n: 0, steps: 0 };
    d.n++;
    d.steps = Math.max(d.steps, owed);
    decode.set(m, d);
  }
  for (const [m, d] of decode) {
    const maxBatch = view.models.get(m)!.maxBatch;
    const batches = Math.ceil(d.n / maxBatch);
    workMs += batches * d.steps * predictor.decodeStepMs(m, Math.min(d.n, maxBatch));
  }
  const devs = [...view.devices.values()].filter((d) => !d.down && mayServe(d, modelId));
  for (const m of models) if (!devs.some((d) => d.resident.has(m))) workMs += predictor.loadMs(m);
  return Math.max(workMs / Math.max(1, devs.length), slotWaitMs(view, predictor, modelId, nowMs, devs.length));
}

/**
 * A prompt starts only in a free slot of its model (`maxBatch` per copy): with as many
 * on-time requests of the model ahead as there are slots, the new one waits for whole
 * outputs to finish, however idle the rest of the pool is.
 */
function slotWaitMs(view: SchedulerView, predictor: Predictor, modelId: ModelId, nowMs: number, devices: number): number {
  const maxBatch = view.models.get(modelId)!.maxBatch;
  let ahead = 0;
  let outputTokens = 0;
  for (const r of view.requests.values()) {
    if (r.spec.modelId !== modelId || hasMissedSlo(r, nowMs)) continue;
    ahead++;
    outputTokens += r.spec.maxOutputTokens;
  }
  const slots = maxBatch * Math.max(1, Math.min(devices, view.holders.get(modelId) ?? 1));
  const rounds = Math.floor(ahead / slots);
  return rounds === 0 ? 0 : rounds * (outputTokens / ahead) * predictor.decodeStepMs(modelId, maxBatch);
}

/** Output tokens (after the first, which comes with the prefill) due by the horizon and not yet produced. */
function tokensOwed(r: RequestRecord, horizonMs: number): number {
  const dueBy = Math.floor((horizonMs - r.spec.arrivalMs - r.slo.ttftMs) / r.slo.tbtMs);
  const produced = Math.max(0, r.generatedTokens - 1);
  return Math.min(dueBy, r.spec.maxOutputTokens - 1) - produced;
}
