/**
 * The scheduler's bookkeeping: requests, per-device residency and memory, waiting groups.
 * Policies read it (`SchedulerView`); only the scheduler and its residency mechanism change
 * it (`SchedulerState`).
 */
import type { Command, DeviceId, DeviceProfile, ModelId, ModelProfile, RequestId, RequestSpec, SloTargets } from "../core/types.ts";
import { tokenDeadlineMs } from "../core/types.ts";
import type { MemoryLedger } from "./MemoryLedger.ts";

export type RequestPhase = "queued" | "prefilling" | "decoding" | "done";
/** Where a request's KV lives: nowhere yet, in a device slot, or parked in the host tier. */
export type KvLocation = "none" | "device" | "host";

export interface RequestRecord {
  spec: RequestSpec;
  slo: SloTargets;
  phase: RequestPhase;
  deviceId?: DeviceId;
  /** Prompt tokens evaluated so far. */
  prefilledTokens: number;
  /** Output tokens produced so far (the first comes with the last prefill chunk). */
  generatedTokens: number;
  kv: KvLocation;
  /** Admission order, for FCFS ties. */
  seq: number;
  /** A token came after its deadline: the request can no longer meet its SLO. */
  missedSlo: boolean;
}

/** Tokens held in KV: the prompt so far plus every output token but the pending last one. */
export function kvTokens(r: RequestRecord): number {
  return r.prefilledTokens + Math.max(0, r.generatedTokens - 1);
}

/** Prompt tokens the request's next prefill chunk evaluates: a `wholePrompt` request takes all that is left at once. */
export function nextChunkTokens(r: RequestRecord, chunkTokens: number): number {
  const left = r.spec.promptTokens - r.prefilledTokens;
  return r.spec.wholePrompt ? left : Math.min(left, chunkTokens);
}

/** Deadline of the request's next output token under the deadline SLO. */
export function nextTokenDeadlineMs(r: RequestRecord): number {
  return tokenDeadlineMs(r.spec.arrivalMs, r.slo, r.generatedTokens);
}

/**
 * The request can no longer meet its deadline SLO: a token already came late, or its next
 * token is overdue now.
 */
export function hasMissedSlo(r: RequestRecord, nowMs: number): boolean {
  return r.missedSlo || nowMs > nextTokenDeadlineMs(r);
}

export interface ResidentModel {
  /** Loading until its load command completes. */
  ready: boolean;
  lastUsedMs: number;
}

export interface DeviceState {
  profile: DeviceProfile;
  ledger: MemoryLedger;
  resident: Map<ModelId, ResidentModel>;
  running: Command | null;
  /** Sequences of ended requests the device must drop, sent with its next command. */
  pendingRelease: RequestId[];
  down: boolean;
}

/** Dedicated placement: a device whose profile lists models serves only those. */
export function mayServe(dev: DeviceState, modelId: ModelId): boolean {
  return !dev.profile.allowedModels || dev.profile.allowedModels.includes(modelId);
}

/** Requests of one model waiting for prefill together (grouped FCFS). */
export interface WaitingGroup {
  modelId: ModelId;
  requestIds: RequestId[];
}

/** What policies ask of fair sharing. */
export interface FairShareView {
  /** Two or more tenants have live requests and one is a window ahead of another: someone yields. */
  readonly contended: boolean;
  /**
   * The request's tenant is a window ahead of another tenant with live requests: its work
   * sets no deadline while that tenant's work runs (it yields, as late work does).
   */
  yields(r: RequestRecord): boolean;
  /** The request waits, and its tenant is a window ahead of another tenant with requests waiting: it does not start now. */
  held(r: RequestRecord): boolean;
}

export interface SchedulerView {
  readonly models: ReadonlyMap<ModelId, ModelProfile>;
  readonly devices: ReadonlyMap<DeviceId, DeviceState>;
  readonly requests: ReadonlyMap<RequestId, RequestRecord>;
  readonly groups: readonly WaitingGroup[];
  /** Requests bound to each device (prefilling or decoding), in admission order. */
  readonly boundTo: ReadonlyMap<DeviceId, ReadonlySet<RequestRecord>>;
  /** Waiting requests in arrival order (FIFO). */
  readonly waiting: ReadonlySet<RequestRecord>;
  /** Requests whose KV is parked in the host tier (any device may resume them). */
  readonly parked: ReadonlySet<RequestRecord>;
  /** How many live devices hold each model (resident or loading). */
  readonly holders: ReadonlyMap<ModelId, number>;
  /** Fair sharing between tenants; absent when it is off. */
  readonly fairShare?: FairShareView | undefined;
  /**
   * Moves with every change of the state (each event, each issued command): what a policy
   * derives from the view holds while this and the time stay the same (perRound.ts).
   */
  readonly version: number;
}

/** The same bookkeeping, writable: what the scheduler and its residency mechanism change. */
export interface SchedulerState extends SchedulerView {
  readonly devices: Map<DeviceId, DeviceState>;
  readonly requests: Map<RequestId, RequestRecord>;
  readonly groups: WaitingGroup[];
  readonly boundTo: Map<DeviceId, Set<RequestRecord>>;
  readonly waiting: Set<RequestRecord>;
  readonly parked: Set<RequestRecord>;
  readonly holders: Map<ModelId, number>;
}

/** Models that requests bound to the device (prefilling or decoding) are using. */
export function modelsInUse(view: SchedulerView, deviceId: DeviceId): Set<ModelId> {
  const inUse = new Set<ModelId>();
  for (const r of view.boundTo.get(deviceId)!) inUse.add(r.spec.modelId);
  return inUse;
}

export function kvReservationBytes(model: ModelProfile, spec: RequestSpec): number {
  return Math.min(spec.promptTokens + spec.maxOutputTokens, model.contextTokens) * model.kvBytesPerToken;
}

export function weightKey(modelId: ModelId): string {
  return `w:${modelId}`;
}

export function kvKey(requestId: RequestId): string {
  return `kv:${requestId}`;
}
