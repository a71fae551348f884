/**
 * `token` policy, part two: turn management. A device works in turns, one model per turn.
 * A turn lasts at least its round-robin quota (the reference design's formula) and is
 * extended while no other model's work on the device is close to its deadline; then the
 * next turn goes to the model whose work must start soonest, counting the switch it needs.
 */
import type { ModelId } from "../core/types.ts";
import { tokenDeadlineMs } from "../core/types.ts";
import type { DeviceWork, ModelWork } from "./eligibility.ts";
import type { Predictor } from "./Predictor.ts";
import { computeQuotas } from "./quota.ts";
import { nextTokenDeadlineMs, type RequestRecord } from "./state.ts";

export interface Turn {
  modelId: ModelId;
  /** When the turn's first step ran; null while its model is still being switched in. */
  startedMs: number | null;
  /** Minimum time the turn keeps the device (the round-robin quota). */
  quotaMs: number;
}

/** Latest time the request's first prompt chunk can start and its first token still come on time. */
export function prefillStartBy(r: RequestRecord, predictor: Predictor): number {
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

/**
 * The device's turn for this plan: the previous one while it lasts, else the next. A turn's
 * clock starts at its first step, not at the switch.
 */
export function currentTurn(seen: DeviceWork, previous: Turn | null, maxQuotaMs: number): Turn {
  let turn = previous;
  if (turn && !seen.work.has(turn.modelId)) turn = null;
  if (turn && !seen.dev.resident.has(turn.modelId)) turn = null;
  if (turn && !keepTurn(seen, turn, maxQuotaMs)) turn = null;
  turn ??= nextTurn(seen, maxQuotaMs);
  if (turn.startedMs === null && seen.dev.resident.get(turn.modelId)?.ready) turn = { ...turn, startedMs: seen.nowMs };
  return turn;
}

/** Whether the turn goes on: within its quota, or extended while the other work has slack. */
function keepTurn(seen: DeviceWork, turn: Turn, maxQuotaMs: number): boolean {
  const { view, predictor, dev, nowMs, work, room, switchMs, maxBatch } = seen;
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
  let keep = elapsed < turn.quotaMs || (!cheapUrgent && elapsed < maxQuotaMs && expensiveSlack > guardMs);
  // A turn whose work all yields to a tenant fair sharing favours has no quota to keep.
  if (seen.contended && cheapUrgent && currentStartBy === Infinity) keep = false;
  if (!keep && !cheapUrgent && expensive && elapsed < maxQuotaMs && current.onTime > 0) {
    // The waiting work's slack has run out, but preempting the running batch costs two
    // switches while its deadlines keep running. Preempt only when the trip away and back
    // spares every on-time request of the batch and finishing first would cost a waiting
    // request its SLO.
    keep =
      missedIfPreempted(current, expensive, nowMs, predictor, switchMs(expensive.modelId), batchSize, maxBatch(expensive.modelId), seen.yields) > 0 ||
      missedIfKept(current, expensive, nowMs, predictor, batchSize, seen.yields) === 0;
  }
  return keep;
}

/** The next turn: the model whose work must start soonest, counting the switch it needs. */
function nextTurn(seen: DeviceWork, maxQuotaMs: number): Turn {
  const { view, predictor, dev, work, room, switchMs, maxBatch } = seen;
  // Work that would evict a model with live requests is charged for bringing it back.
  let comeBackMs = 0;
  for (const r of view.boundTo.get(dev.profile.id)!) comeBackMs = Math.max(comeBackMs, predictor.loadMs(r.spec.modelId));
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
  return { modelId: chosen.modelId, startedMs: null, quotaMs: turnQuotaMs(chosen, seen, maxQuotaMs) };
}

/**
 * Running requests of `current` that would miss a deadline if the device served `other`
 * first: switching there, prefilling and decoding a batch of its work to the end, and
 * switching back, with a margin of half again.
 */
function missedIfPreempted(
  current: ModelWork,
  other: ModelWork,
  nowMs: number,
  predictor: Predictor,
  switchMs: number,
  batchSize: number,
  otherMaxBatch: number,
  yields: (r: RequestRecord) => boolean,
): number {
  let otherMs = 0;
  let otherTokens = 0;
  const otherBatch = [...other.decoding.slice(0, other.onTime), ...other.prefill.filter((r) => !yields(r))].slice(0, otherMaxBatch);
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
function missedIfKept(current: ModelWork, other: ModelWork, nowMs: number, predictor: Predictor, batchSize: number, yields: (r: RequestRecord) => boolean): number {
  let tokens = 0;
  for (let i = 0; i < current.onTime; i++) tokens = Math.max(tokens, current.decoding[i]!.spec.maxOutputTokens - current.decoding[i]!.generatedTokens);
  const finishMs = nowMs + tokens * predictor.decodeStepMs(current.modelId, batchSize);
  let n = 0;
  for (const r of other.prefill) if (!yields(r) && prefillStartBy(r, predictor) < finishMs) n++;
  for (let i = 0; i < other.onTime; i++) if (nextTokenDeadlineMs(other.decoding[i]!) < finishMs) n++;
  return n;
}

/**
 * The chosen model's share of a round: its weighted round-robin quota among the models
 * with decode work on this device, plus the time to prefill what it has waiting.
 */
function turnQuotaMs(chosen: ModelWork, seen: DeviceWork, maxQuotaMs: number): number {
  const { view, predictor, dev, work } = seen;
  const decodeModels = [...work.values()].filter((w) => w.decoding.length > 0);
  const inputs = decodeModels.map((w) => ({
    stepMs: predictor.decodeStepMs(w.modelId, Math.min(w.decoding.length, view.models.get(w.modelId)!.maxBatch)),
    tbtSloMs: w.decoding[0]!.slo.tbtMs,
  }));
  // Switches are needed only when the round's models do not all fit in the device together.
  const weightBytes = decodeModels.reduce((s, w) => s + view.models.get(w.modelId)!.weightBytes, 0);
  const switchCostMs = weightBytes <= dev.ledger.capacityBytes ? 0 : decodeModels.reduce((s, w) => s + predictor.loadMs(w.modelId), 0);
  const { quotasMs } = computeQuotas(inputs, switchCostMs, maxQuotaMs);
  const i = decodeModels.indexOf(chosen);
  const decodeQuota = i >= 0 ? quotasMs[i]! : 0;
  const prefillMs = chosen.prefill.reduce((s, r) => s + predictor.prefillMs(r.spec.modelId, r.spec.promptTokens - r.prefilledTokens), 0);
  return Math.min(decodeQuota + prefillMs, maxQuotaMs);
}
