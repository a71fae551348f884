/**
 * `token` policy: token-level pooling (see DESIGN.md beside this file).
 *
 * A device works in turns, one model per turn. Within a turn it picks, earliest deadline
 * first, between a prefill chunk of that model's waiting requests (grouped FCFS) and a
 * decode step of that model's batch. A turn lasts at least its round-robin quota (the
 * reference design's formula) and is extended while no other model's work on the device
 * is close to its deadline; then the next turn goes to the model whose work must start
 * soonest, counting the switch it needs.
 */
import type { DeviceId, ModelId, RequestId } from "../core/types.ts";
import { tokenDeadlineMs } from "../core/types.ts";
import type { Intent } from "./intent.ts";
import type { Predictor } from "./Predictor.ts";
import { computeQuotas } from "./quota.ts";
import { decodeSteps } from "./steps.ts";
import type { DeviceState, RequestRecord, SchedulerView, Turn } from "./state.ts";
import { hasMissedSlo, modelsInUse, nextTokenDeadlineMs } from "./state.ts";

export interface TokenPolicyOptions {
  maxQuotaMs: number;
  decodeSliceMs: number;
  idleDecodeSliceMs: number;
  maxGroupSize: number;
  prefillChunkTokens: number;
}

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
 * Which waiting requests a device may take: groups of models it holds, and groups of models
 * no other device holds; a group another device holds is left to that device unless its
 * oldest request has waited a quarter of its TTFT target. At most one group's worth per
 * model: a turn prefills one group (grouped FCFS), the rest wait for the next turn.
 */
export function eligibleWaiting(
  view: SchedulerView,
  dev: DeviceState,
  nowMs: number,
  perModel: number,
  /** freeableWithoutPreempting(view, dev), computed once per plan by the caller. */
  myRoom: number,
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
        if (
          waited < oldest.slo.ttftMs / 2 ||
          g.requestIds.length < Math.min(model.maxBatch + 1, perModel) ||
          myRoom < model.weightBytes ||
          copyLoading(view, g.modelId)
        )
          continue;
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
              if (r === undefined) otherRoom.set(d, (r = freeableWithoutPreempting(view, d)));
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
      if (hasMissedSlo(r, nowMs)) late.push(r);
      else list.push(r);
    }
    for (const r of late) if (list.length < perModel) list.push(r);
    out.set(g.modelId, list);
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

function copyLoading(view: SchedulerView, modelId: ModelId): boolean {
  for (const d of view.devices.values()) if (d.resident.get(modelId)?.ready === false) return true;
  return false;
}

/** Bytes a device could free without preempting anyone: free memory plus idle models. */
export function freeableWithoutPreempting(view: SchedulerView, d: DeviceState): number {
  const busy = modelsInUse(view, d.profile.id);
  let bytes = d.ledger.freeBytes;
  for (const m of d.resident.keys()) if (!busy.has(m)) bytes += view.models.get(m)!.weightBytes;
  return bytes;
}

export function mayServe(dev: DeviceState, modelId: ModelId): boolean {
  return !dev.profile.allowedModels || dev.profile.allowedModels.includes(modelId);
}

export function workOnDevice(
  view: SchedulerView,
  dev: DeviceState,
  deviceId: DeviceId,
  nowMs: number,
  perModel: number,
  room: number,
): Map<ModelId, ModelWork> {
  const work = new Map<ModelId, ModelWork>();
  const get = (modelId: ModelId): ModelWork => {
    let w = work.get(modelId);
    if (!w) {
      w = { modelId, decoding: [], prefill: [], onTime: 0, prefillOnTime: false };
      work.set(modelId, w);
    }
    return w;
  };
  for (const r of view.boundTo.get(deviceId)!) {
    if (r.phase === "decoding") get(r.spec.modelId).decoding.push(r);
    else if (r.phase === "prefilling") get(r.spec.modelId).prefill.push(r);
  }
  for (const r of adoptableParked(view, dev, room)) (r.phase === "decoding" ? get(r.spec.modelId).decoding : get(r.spec.modelId).prefill).push(r);
  for (const [modelId, reqs] of eligibleWaiting(view, dev, nowMs, perModel, room)) get(modelId).prefill.push(...reqs);
  // Requests that can still meet their SLO come first (earliest deadline first); those that
  // cannot yield to them and follow in admission order.
  const missed = (r: RequestRecord) => hasMissedSlo(r, nowMs);
  for (const w of work.values()) {
    w.prefill.sort((a, b) => Number(missed(a)) - Number(missed(b)) || Number(a.phase === "queued") - Number(b.phase === "queued") || a.seq - b.seq);
    w.decoding.sort((a, b) => Number(missed(a)) - Number(missed(b)) || (missed(a) ? 0 : nextTokenDeadlineMs(a) - nextTokenDeadlineMs(b)) || a.seq - b.seq);
    w.onTime = w.decoding.findIndex(missed) < 0 ? w.decoding.length : w.decoding.findIndex(missed);
    w.prefillOnTime = w.prefill.length > 0 && !missed(w.prefill[0]!);
  }
  return work;
}

function prefillStartBy(r: RequestRecord, predictor: Predictor): number {
  return tokenDeadlineMs(r.spec.arrivalMs, r.slo, 0) - predictor.prefillMs(r.spec.modelId, r.spec.promptTokens - r.prefilledTokens);
}

/**
 * Latest time the model's most urgent work can start and still meet its deadline. Work that
 * can no longer meet its SLO sets no deadline (Infinity): it runs when nothing else must.
 */
export function startByMs(w: ModelWork, predictor: Predictor, maxBatch: number): number {
  let t = Infinity;
  if (w.onTime > 0) {
    const step = predictor.decodeStepMs(w.modelId, Math.min(w.decoding.length, maxBatch));
    t = Math.min(t, nextTokenDeadlineMs(w.decoding[0]!) - step);
  }
  if (w.prefillOnTime) t = Math.min(t, prefillStartBy(w.prefill[0]!, predictor));
  return t;
}

export function planTokenIntent(
  view: SchedulerView,
  deviceId: DeviceId,
  nowMs: number,
  predictor: Predictor,
  options: TokenPolicyOptions,
): { intents: Intent[]; turn: Turn | null } {
  const dev = view.devices.get(deviceId)!;
  // Nothing changes state within one plan: what the device could free without preempting
  // is computed once and serves the waiting groups, the turn check and the next-turn choice.
  const room = freeableWithoutPreempting(view, dev);
  const work = workOnDevice(view, dev, deviceId, nowMs, options.maxGroupSize, room);
  if (work.size === 0) return { intents: [], turn: null };
  const switchMs = (m: ModelId): number => (dev.resident.get(m)?.ready ? 0 : predictor.loadMs(m));
  const maxBatch = (m: ModelId): number => view.models.get(m)!.maxBatch;

  let turn = dev.turn;
  if (turn && !work.has(turn.modelId)) turn = null;
  if (turn && !dev.resident.has(turn.modelId)) turn = null;
  if (turn) {
    // The switch does not count against the quota: a model just switched in always gets its turn.
    const elapsed = turn.startedMs === null ? 0 : nowMs - turn.startedMs;
    const current = work.get(turn.modelId)!;
    const currentStartBy = startByMs(current, predictor, maxBatch(turn.modelId));
    // Other work splits in two. Work whose model is resident, or can be loaded into free or
    // idle memory, is cheap to turn to: turns rotate at their quota, earliest deadline first.
    // Work that would preempt live requests costs two switches (out and back): the turn is
    // stretched while that work still has slack.
    let expensiveSlack = Infinity;
    let expensive: ModelWork | undefined;
    let cheapUrgent = false;
    for (const w of work.values()) {
      if (w.modelId === turn.modelId) continue;
      const startBy = startByMs(w, predictor, maxBatch(w.modelId));
      const resident = dev.resident.get(w.modelId)?.ready === true;
      if (resident || room >= view.models.get(w.modelId)!.weightBytes) {
        if (startBy - switchMs(w.modelId) < currentStartBy) cheapUrgent = true;
      } else {
        // Keep a margin of half a switch: switch predictions are the least certain.
        const slack = startBy - 1.5 * switchMs(w.modelId) - nowMs;
        if (slack < expensiveSlack) {
          expensiveSlack = slack;
          expensive = w;
        }
      }
    }
    const batchSize = Math.max(1, Math.min(current.decoding.length, maxBatch(turn.modelId)));
    const guardMs = 2 * Math.max(predictor.decodeStepMs(turn.modelId, batchSize), 1);
    let keep = elapsed < turn.quotaMs || (!cheapUrgent && elapsed < options.maxQuotaMs && expensiveSlack > guardMs);
    if (!keep && !cheapUrgent && expensive && elapsed < options.maxQuotaMs && current.onTime > 0) {
      // The waiting work's slack has run out, but preempting the running batch costs two
      // switches while its deadlines keep running. Preempt only when the trip away and back
      // spares every on-time request of the batch and finishing first would cost a waiting
      // request its SLO.
      keep =
        missedIfPreempted(current, expensive, nowMs, predictor, switchMs(expensive.modelId), batchSize, maxBatch(expensive.modelId)) > 0 ||
        missedIfKept(current, expensive, nowMs, predictor, batchSize) === 0;
    }
    if (!keep) turn = null;
  }
  if (!turn) {
    // Work that would evict a model with live requests is charged for bringing it back.
    let comeBackMs = 0;
    for (const r of view.boundTo.get(deviceId)!) comeBackMs = Math.max(comeBackMs, predictor.loadMs(r.spec.modelId));
    let best: ModelWork | undefined;
    let bestKey = Infinity;
    for (const w of work.values()) {
      const preempts = !dev.resident.get(w.modelId)?.ready && room < view.models.get(w.modelId)!.weightBytes;
      const key = startByMs(w, predictor, maxBatch(w.modelId)) - switchMs(w.modelId) + (preempts ? comeBackMs : 0);
      // Ties (e.g. nothing urgent anywhere) go to a resident model: no switch needed.
      if (key < bestKey || (key === bestKey && best && switchMs(best.modelId) > 0 && switchMs(w.modelId) === 0)) {
        best = w;
        bestKey = key;
      }
    }
    const chosen = best ?? work.values().next().value!;
    turn = { modelId: chosen.modelId, startedMs: null, quotaMs: turnQuotaMs(chosen, work, view, dev, predictor, options) };
  }
  if (turn.startedMs === null && dev.resident.get(turn.modelId)?.ready) turn = { ...turn, startedMs: nowMs };

  const w = work.get(turn.modelId)!;
  const batch = decodeBatch(w, maxBatch(w.modelId), nowMs);
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
        if (hasMissedSlo(r, nowMs)) heldMissed++;
        else mostSlackMs = Math.max(mostSlackMs, nextTokenDeadlineMs(r) - nowMs);
        firstFreeMs = Math.min(firstFreeMs, (r.spec.maxOutputTokens - r.generatedTokens) * fullStepMs);
      }
    for (const r of w.prefill) if (r.kv === "device") held++;
    const waitingMisses = w.prefillOnTime && prefillStartBy(pre, predictor) - nowMs < firstFreeMs;
    if (held >= maxBatch(w.modelId) && heldMissed === 0 && !(waitingMisses && mostSlackMs > pre.slo.ttftMs)) pre = undefined;
  }
  const prefill: Intent[] = pre ? [{ kind: "prefill", modelId: w.modelId, requestId: pre.spec.id }] : [];
  if (batch.length === 0) return { intents: prefill, turn };
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
    const chunkMs = predictor.prefillMs(w.modelId, Math.min(pre.spec.promptTokens - pre.prefilledTokens, options.prefillChunkTokens));
    // Work that can no longer meet its SLO has no deadline to keep.
    let batchDue = Infinity;
    for (const r of batch) if (!hasMissedSlo(r, nowMs)) batchDue = Math.min(batchDue, nextTokenDeadlineMs(r));
    const prefillDue = w.prefillOnTime ? prefillStartBy(pre, predictor) : Infinity;
    const roomInBatch = w.decoding.length < maxBatch(w.modelId);
    prefillFirst = (roomInBatch && batchDue - stepMs - nowMs > chunkMs) || (prefillDue !== Infinity && prefillDue <= batchDue);
  }
  return { intents: prefillFirst ? [...prefill, decode] : [decode, ...prefill], turn };
}

/**
 * The requests of one decode step: up to `size`, earliest deadline first, except that a
 * request parked in the host tier displaces one whose KV is on the device only when its
 * next token is due within its TBT target. Choosing by deadline alone swapped requests in
 * and out at every step once a model had more decoding requests than slots: each step moves
 * the batch's deadlines past the parked ones'.
 */
function decodeBatch(w: ModelWork, size: number, nowMs: number): RequestRecord[] {
  if (w.decoding.length <= size) return w.decoding.slice();
  const urgent = (r: RequestRecord): boolean => r.kv !== "device" && !hasMissedSlo(r, nowMs) && nextTokenDeadlineMs(r) - nowMs < r.slo.tbtMs;
  const first = w.decoding.filter(urgent);
  const onDevice = w.decoding.filter((r) => r.kv === "device");
  const rest = w.decoding.filter((r) => r.kv !== "device" && !urgent(r));
  return [...first, ...onDevice, ...rest].slice(0, size);
}

/**
 * Running requests of `current` that would miss a deadline if the device served `other`
 * first: switching there, prefilling and decoding a batch of its work to the end, and
 * switching back, with a margin of half again.
 */
function missedIfPreempted(current: ModelWork, other: ModelWork, nowMs: number, predictor: Predictor, switchMs: number, batchSize: number, otherMaxBatch: number): number {
  let otherMs = 0;
  let otherTokens = 0;
  const otherBatch = [...other.decoding.slice(0, other.onTime), ...other.prefill.filter((r) => !hasMissedSlo(r, nowMs))].slice(0, otherMaxBatch);
  for (const r of otherBatch) {
    otherMs += predictor.prefillMs(r.spec.modelId, r.spec.promptTokens - r.prefilledTokens);
    otherTokens = Math.max(otherTokens, r.spec.maxOutputTokens - r.generatedTokens);
  }
  otherMs += otherTokens * predictor.decodeStepMs(other.modelId, Math.max(1, otherBatch.length));
  // With a margin: the device may take longer to come back than its own plan says.
  const awayMs = 1.5 * (2 * switchMs + otherMs) + predictor.decodeStepMs(current.modelId, batchSize);
  let n = 0;
  for (let i = 0; i < current.onTime; i++) if (nextTokenDeadlineMs(current.decoding[i]!) < nowMs + awayMs) n++;
  return n;
}

/** Waiting requests of `other` that would miss their first token if `current`'s running batch finished first. */
function missedIfKept(current: ModelWork, other: ModelWork, nowMs: number, predictor: Predictor, batchSize: number): number {
  let tokens = 0;
  for (let i = 0; i < current.onTime; i++) tokens = Math.max(tokens, current.decoding[i]!.spec.maxOutputTokens - current.decoding[i]!.generatedTokens);
  const finishMs = nowMs + tokens * predictor.decodeStepMs(current.modelId, batchSize);
  let n = 0;
  for (const r of other.prefill) if (!hasMissedSlo(r, nowMs) && prefillStartBy(r, predictor) < finishMs) n++;
  for (let i = 0; i < other.onTime; i++) if (nextTokenDeadlineMs(other.decoding[i]!) < finishMs) n++;
  return n;
}

/**
 * The chosen model's share of a round: its weighted round-robin quota among the models
 * with decode work on this device, plus the time to prefill what it has waiting.
 */
function turnQuotaMs(
  chosen: ModelWork,
  work: Map<ModelId, ModelWork>,
  view: SchedulerView,
  dev: DeviceState,
  predictor: Predictor,
  options: TokenPolicyOptions,
): number {
  const decodeModels = [...work.values()].filter((w) => w.decoding.length > 0);
  const inputs = decodeModels.map((w) => ({
    stepMs: predictor.decodeStepMs(w.modelId, Math.min(w.decoding.length, view.models.get(w.modelId)!.maxBatch)),
    tbtSloMs: w.decoding[0]!.slo.tbtMs,
  }));
  // Switches are needed only when the round's models do not all fit in the device together.
  const weightBytes = decodeModels.reduce((s, w) => s + view.models.get(w.modelId)!.weightBytes, 0);
  const switchCostMs =
    weightBytes <= dev.ledger.capacityBytes ? 0 : decodeModels.reduce((s, w) => s + predictor.loadMs(w.modelId), 0);
  const { quotasMs } = computeQuotas(inputs, switchCostMs, options.maxQuotaMs);
  const i = decodeModels.indexOf(chosen);
  const decodeQuota = i >= 0 ? quotasMs[i]! : 0;
  const prefillMs = chosen.prefill.reduce((s, r) => s + predictor.prefillMs(r.spec.modelId, r.spec.promptTokens - r.prefilledTokens), 0);
  return Math.min(decodeQuota + prefillMs, options.maxQuotaMs);
}
