/**
 * `token` policy, part three: what a device runs within a turn. Earliest deadline first
 * between a prefill chunk of the turn's model's oldest waiting request and a decode step of
 * its batch; several decode steps back to back while nothing else is due.
 */
import type { RequestId } from "../core/types.ts";
import type { DeviceWork, ModelWork } from "./eligibility.ts";
import type { Intent } from "./intent.ts";
import { nextChunkTokens, nextTokenDeadlineMs, type RequestRecord } from "./state.ts";
import { decodeSteps } from "./steps.ts";
import { prefillStartBy, startByMs, type Turn } from "./turns.ts";

export interface TurnIntentOptions {
  decodeSliceMs: number;
  /** Decode run when the pool is quiet; equal to `decodeSliceMs` to leave it off. */
  idleDecodeSliceMs: number;
  prefillChunkTokens: number;
}

/** Intents for the turn's model, in order of preference (the second is the fallback). */
export function turnIntents(seen: DeviceWork, turn: Turn, options: TurnIntentOptions): Intent[] {
  const { view, predictor, nowMs, work, switchMs, maxBatch, yields } = seen;
  const w = work.get(turn.modelId)!;
  const batch = decodeBatch(w, maxBatch(w.modelId), nowMs, yields);
  // A prompt needs a slot in the model's context. With every slot held by a request that can
  // still meet its SLO, the prompt waits for one to finish: parking a running request to
  // start another only trades whose deadline slips, and costs two KV copies. Except where
  // waiting would cost the prompt its first token while a slot holder has banked more slack
  // than the prompt's whole TTFT target: that one is parked (the mechanism parks the request
  // whose next token is due last) and comes back when its deadline nears (decodeBatch).
  let pre: RequestRecord | undefined = w.prefill[0];
  if (pre && pre.kv !== "device") {
    let held = 0;
    let heldMissed = 0;
    let mostSlackMs = -Infinity;
    let firstFreeMs = Infinity;
    const fullStepMs = predictor.decodeStepMs(w.modelId, maxBatch(w.modelId));
    for (const r of w.decoding)
      if (r.kv === "device") {
        held++;
        if (yields(r)) heldMissed++;
        else mostSlackMs = Math.max(mostSlackMs, nextTokenDeadlineMs(r) - nowMs);
        firstFreeMs = Math.min(firstFreeMs, (r.spec.maxOutputTokens - r.generatedTokens) * fullStepMs);
      }
    for (const r of w.prefill) if (r.kv === "device") held++;
    const waitingMisses = w.prefillOnTime && prefillStartBy(pre, predictor) - nowMs < firstFreeMs;
    if (held >= maxBatch(w.modelId) && heldMissed === 0 && !(waitingMisses && mostSlackMs > pre.slo.ttftMs)) pre = undefined;
  }
  const prefill: Intent[] = pre ? [{ kind: "prefill", modelId: w.modelId, requestId: pre.spec.id }] : [];
  if (batch.length === 0) return prefill;
  const ids: RequestId[] = batch.map((r) => r.spec.id);
  const stepMs = predictor.decodeStepMs(w.modelId, batch.length);
  // Run several steps back to back, but stop in time for this model's waiting prefill, for
  // the end of a quota that other models wait on, and for other models' start-by times.
  let capMs = Infinity;
  if (pre && w.prefillOnTime) capMs = Math.min(capMs, prefillStartBy(pre, predictor) - nowMs);
  for (const o of work.values()) {
    if (o.modelId === w.modelId) continue;
    capMs = Math.min(capMs, Math.max(0, startByMs(o, predictor, maxBatch(o.modelId)) - 1.5 * switchMs(o.modelId) - nowMs));
    if (turn.startedMs !== null) capMs = Math.max(capMs, turn.quotaMs - (nowMs - turn.startedMs));
  }
  const cap = capMs === Infinity ? Infinity : Math.floor(capMs / Math.max(stepMs, 1e-6));
  // The pool is quiet (this batch is every live request): a long run saves a round trip per
  // token, and the driver cuts it when work comes. Under load, runs stay short: measured on
  // scenario P, long runs whenever the device alone was quiet cost 10 points at 6 req/s.
  const idle = options.idleDecodeSliceMs > options.decodeSliceMs && pre === undefined && view.requests.size === batch.length;
  const steps = decodeSteps(batch, stepMs, idle ? options.idleDecodeSliceMs : options.decodeSliceMs, cap);
  const decode: Intent = { kind: "decode", modelId: w.modelId, requestIds: ids, steps, ...(idle ? { interruptible: true } : {}) };
  // A waiting prompt joins the running batch while it has room and its next token is not
  // due before the prompt's chunk is done (batching is what makes decode cheap); otherwise
  // earliest deadline first. The other intent is the fallback if memory blocks the first.
  let prefillFirst = false;
  if (pre !== undefined) {
    const chunkMs = predictor.prefillMs(w.modelId, nextChunkTokens(pre, options.prefillChunkTokens));
    // Work that can no longer meet its SLO has no deadline to keep.
    let batchDue = Infinity;
    for (const r of batch) if (!yields(r)) batchDue = Math.min(batchDue, nextTokenDeadlineMs(r));
    const prefillDue = w.prefillOnTime ? prefillStartBy(pre, predictor) : Infinity;
    const roomInBatch = w.decoding.length < maxBatch(w.modelId);
    prefillFirst = (roomInBatch && batchDue - stepMs - nowMs > chunkMs) || (prefillDue !== Infinity && prefillDue <= batchDue);
  }
  return prefillFirst ? [...prefill, decode] : [decode, ...prefill];
}

/**
 * The requests of one decode step: up to `size`, earliest deadline first, except that a
 * request parked in the host tier displaces one whose KV is on the device only when its
 * next token is due within its TBT target. Choosing by deadline alone swapped requests in
 * and out at every step once a model had more decoding requests than slots: each step moves
 * the batch's deadlines past the parked ones'.
 */
function decodeBatch(w: ModelWork, size: number, nowMs: number, yields: (r: RequestRecord) => boolean): RequestRecord[] {
  if (w.decoding.length <= size) return w.decoding.slice();
  const first = w.decoding.filter((r) => urgent(r, nowMs, yields));
  const onDevice = w.decoding.filter((r) => r.kv === "device");
  const rest = w.decoding.filter((r) => r.kv !== "device" && !urgent(r, nowMs, yields));
  return [...first, ...onDevice, ...rest].slice(0, size);
}

/** Parked, on time, and its next token due within its TBT target. */
function urgent(r: RequestRecord, nowMs: number, yields: (r: RequestRecord) => boolean): boolean {
  return r.kv !== "device" && !yields(r) && nextTokenDeadlineMs(r) - nowMs < r.slo.tbtMs;
}
