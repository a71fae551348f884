/**
 * `token` policy, part one: which work a device sees. Its own requests (prefilling and
 * decoding), requests other devices parked in the host tier that it may resume, and the
 * waiting groups it may take, per model and ordered for the turn and intent choice
 * (turns.ts, turnIntents.ts).
 */
import type { DeviceId, ModelId } from "../core/types.ts";
import type { Predictor } from "./Predictor.ts";
import type { DeviceState, RequestRecord, SchedulerView, WaitingGroup } from "./state.ts";
import { hasMissedSlo, mayServe, modelsInUse, nextTokenDeadlineMs } from "./state.ts";

export interface ModelWork {
  modelId: ModelId;
  /** Decoding requests bound to this device. */
  decoding: RequestRecord[];
  /** Requests bound to this device with prompt left, then waiting ones it may take. */
  prefill: RequestRecord[];
  /** How many of `decoding` (at its front) can still meet their SLO. */
  onTime: number;
  /** Whether `prefill[0]` can still meet its SLO. */
  prefillOnTime: boolean;
}

/**
 * What one device sees in one plan. Nothing changes state within a plan, so this is computed
 * once and serves the waiting groups, the turn check, the next-turn choice and the intents.
 */
export interface DeviceWork {
  view: SchedulerView;
  predictor: Predictor;
  dev: DeviceState;
  nowMs: number;
  work: Map<ModelId, ModelWork>;
  /** Bytes the device could free without preempting anyone (freeableWithoutPreempting). */
  room: number;
  /**
   * The request sets no deadline now: it can no longer meet its SLO, or its tenant is held
   * back by fair sharing while another tenant waits. Such work runs after the rest.
   */
  yields(r: RequestRecord): boolean;
  /** Fair sharing holds some tenant back in this plan (`yields` then says more than lateness). */
  contended: boolean;
  /** Predicted time to make the model ready here: 0 when it is. */
  switchMs(modelId: ModelId): number;
  maxBatch(modelId: ModelId): number;
}

/** The device's work this plan, or null when it has none. */
export function deviceWork(view: SchedulerView, predictor: Predictor, deviceId: DeviceId, nowMs: number, maxGroupSize: number): DeviceWork | null {
  const dev = view.devices.get(deviceId)!;
  const room = freeableWithoutPreempting(view, dev);
  // Fair sharing hides the waiting requests of a tenant too far ahead of another waiting
  // one, unless that leaves the device with nothing to do (it never idles for fairness).
  let gate = view.fairShare?.contended === true;
  let work = workOnDevice(view, dev, deviceId, nowMs, maxGroupSize, room, gate);
  if (work.size === 0 && gate) {
    gate = false;
    work = workOnDevice(view, dev, deviceId, nowMs, maxGroupSize, room, false);
  }
  if (work.size === 0) return null;
  return {
    view,
    predictor,
    dev,
    nowMs,
    work,
    room,
    contended: gate,
    yields: gate ? (r) => hasMissedSlo(r, nowMs) || view.fairShare!.yields(r) : (r) => hasMissedSlo(r, nowMs),
    switchMs: switchMsOn(dev, predictor),
    maxBatch: maxBatchOf(view),
  };
}

// Closures returned from a function, not assigned to a name: tsx (esbuild keepNames) names
// every named closure with a defineProperty call each time it is made, which profiles showed.
function switchMsOn(dev: DeviceState, predictor: Predictor): (modelId: ModelId) => number {
  return (m) => (dev.resident.get(m)?.ready ? 0 : predictor.loadMs(m));
}

function maxBatchOf(view: SchedulerView): (modelId: ModelId) => number {
  return (m) => view.models.get(m)!.maxBatch;
}

/**
 * Which waiting requests a device may take: groups of models it holds, and groups of models
 * no other device holds; a group another device holds is left to that device unless its
 * oldest request has waited a quarter of its TTFT target. At most one group's worth per
 * model: a turn prefills one group (grouped FCFS), the rest wait for the next turn.
 */
function eligibleWaiting(
  view: SchedulerView,
  dev: DeviceState,
  nowMs: number,
  perModel: number,
  /** freeableWithoutPreempting(view, dev), computed once per plan by the caller. */
  myRoom: number,
  /** Leave out requests fair sharing holds back (fairShare.ts). */
  gate: boolean,
): Map<ModelId, RequestRecord[]> {
  const out = new Map<ModelId, RequestRecord[]>();
  // Called for every idle device at every event: nothing is built unless a group needs it.
  if (view.groups.length === 0) return out;
  let otherRoom: Map<DeviceState, number> | undefined;
  let bestOtherRoom: Map<ModelId, boolean> | undefined;
  for (const g of view.groups) {
    if (!mayServe(dev, g.modelId)) continue;
    const list = out.get(g.modelId) ?? [];
    if (list.length >= perModel) continue;
    if (!dev.resident.has(g.modelId)) {
      const oldest = view.requests.get(g.requestIds[0]!)!;
      const waited = nowMs - oldest.spec.arrivalMs;
      const young = waited < oldest.slo.ttftMs / 4;
      // Not resident here, so any holder is another device (failed devices hold nothing).
      if (view.holders.has(g.modelId)) {
        // A second copy of a model costs a switch here and competes for its requests: only
        // for a group that has waited half its TTFT target and is more than the holder can
        // take in one batch (or a full group), without preempting anyone, and while no copy
        // is still loading (that one will take the group).
        const model = view.models.get(g.modelId)!;
        if (waited < oldest.slo.ttftMs / 2 || g.requestIds.length < Math.min(model.maxBatch + 1, perModel) || myRoom < model.weightBytes || copyLoading(view, g.modelId)) continue;
      } else if (young) {
        // Resident nowhere: leave it to a device that can host it without preempting, if any.
        const need = view.models.get(g.modelId)!.weightBytes;
        if (myRoom < need) {
          bestOtherRoom ??= new Map();
          if (!bestOtherRoom.has(g.modelId)) {
            let other = false;
            otherRoom ??= new Map();
            for (const d of view.devices.values()) {
              if (d === dev || d.down || !mayServe(d, g.modelId)) continue;
              let r = otherRoom.get(d);
              if (r === undefined) {
                r = freeableWithoutPreempting(view, d);
                otherRoom.set(d, r);
              }
              if (r >= need) other = true;
            }
            bestOtherRoom.set(g.modelId, other);
          }
          if (bestOtherRoom.get(g.modelId)) continue;
        }
      }
    }
    // Requests that can still meet their SLO go first; those that cannot follow, in order.
    const late: RequestRecord[] = [];
    for (const id of g.requestIds) {
      if (list.length >= perModel) break;
      const r = view.requests.get(id)!;
      if (gate && view.fairShare!.held(r)) continue;
      if (hasMissedSlo(r, nowMs)) late.push(r);
      else list.push(r);
    }
    for (const r of late) if (list.length < perModel) list.push(r);
    if (list.length > 0) out.set(g.modelId, list);
  }
  return out;
}

/**
 * Requests another device parked whose model that device no longer holds: their KV sits in
 * the host tier, so this device may resume them where their model is ready here, or where
 * no device holds it and this one can load it without preempting. Otherwise a parked
 * request waits for the device that parked it to switch back, which under load may come
 * after its deadline.
 */
function adoptableParked(view: SchedulerView, dev: DeviceState, room: number): RequestRecord[] {
  const out: RequestRecord[] = [];
  for (const r of view.parked) {
    const m = r.spec.modelId;
    if (r.deviceId === dev.profile.id || !mayServe(dev, m)) continue;
    if (view.devices.get(r.deviceId!)!.resident.has(m)) continue;
    if (dev.resident.get(m)?.ready || (!view.holders.has(m) && room >= view.models.get(m)!.weightBytes)) out.push(r);
  }
  return out;
}

/**
 * The group might be taken by a device that does not hold its model: eligibleWaiting's tests
 * short of the device's own room, so true may be wrong and false never is. A group of a
 * model held nowhere is always counted open.
 */
export function openToOthers(view: SchedulerView, g: WaitingGroup, nowMs: number, perModel: number): boolean {
  if (!view.holders.has(g.modelId)) return true;
  const oldest = view.requests.get(g.requestIds[0]!)!;
  const model = view.models.get(g.modelId)!;
  return nowMs - oldest.spec.arrivalMs >= oldest.slo.ttftMs / 2 && g.requestIds.length >= Math.min(model.maxBatch + 1, perModel) && !copyLoading(view, g.modelId);
}

function copyLoading(view: SchedulerView, modelId: ModelId): boolean {
  for (const d of view.devices.values()) if (d.resident.get(modelId)?.ready === false) return true;
  return false;
}

/** Bytes a device could free without preempting anyone: free memory plus idle models. */
function freeableWithoutPreempting(view: SchedulerView, d: DeviceState): number {
  const busy = modelsInUse(view, d.profile.id);
  let bytes = d.ledger.freeBytes;
  for (const m of d.resident.keys()) if (!busy.has(m)) bytes += view.models.get(m)!.weightBytes;
  return bytes;
}

/**
 * The device's work per model: its own requests, parked ones it may adopt, waiting ones it
 * may take; on-time requests first, earliest deadline first.
 */
function workOnDevice(view: SchedulerView, dev: DeviceState, deviceId: DeviceId, nowMs: number, perModel: number, room: number, gate: boolean): Map<ModelId, ModelWork> {
  const work = new Map<ModelId, ModelWork>();
  for (const r of view.boundTo.get(deviceId)!) {
    if (r.phase === "decoding") getWork(work, r.spec.modelId).decoding.push(r);
    else if (r.phase === "prefilling") getWork(work, r.spec.modelId).prefill.push(r);
  }
  for (const r of adoptableParked(view, dev, room)) (r.phase === "decoding" ? getWork(work, r.spec.modelId).decoding : getWork(work, r.spec.modelId).prefill).push(r);
  for (const [modelId, reqs] of eligibleWaiting(view, dev, nowMs, perModel, room, gate)) getWork(work, modelId).prefill.push(...reqs);
  // Requests that can still meet their SLO come first (earliest deadline first); those that
  // cannot yield to them and follow in admission order. Between the two, under fair
  // sharing: on-time requests of a tenant held back, earliest deadline first among them.
  if (work.size === 0) return work;
  const rank = gate ? (r: RequestRecord) => (hasMissedSlo(r, nowMs) ? 2 : view.fairShare!.yields(r) ? 1 : 0) : (r: RequestRecord) => (hasMissedSlo(r, nowMs) ? 2 : 0);
  for (const w of work.values()) {
    w.prefill.sort((a, b) => rank(a) - rank(b) || Number(a.phase === "queued") - Number(b.phase === "queued") || a.seq - b.seq);
    w.decoding.sort((a, b) => rank(a) - rank(b) || (rank(a) === 2 ? 0 : nextTokenDeadlineMs(a) - nextTokenDeadlineMs(b)) || a.seq - b.seq);
    // The on-time requests lead (rank 0), so they are counted up to the first that is not.
    let onTime = 0;
    while (onTime < w.decoding.length && rank(w.decoding[onTime]!) === 0) onTime++;
    w.onTime = onTime;
    w.prefillOnTime = w.prefill.length > 0 && rank(w.prefill[0]!) === 0;
  }
  return work;
}

function getWork(work: Map<ModelId, ModelWork>, modelId: ModelId): ModelWork {
  let w = work.get(modelId);
  if (!w) {
    w = { modelId, decoding: [], prefill: [], onTime: 0, prefillOnTime: false };
    work.set(modelId, w);
  }
  return w;
}
