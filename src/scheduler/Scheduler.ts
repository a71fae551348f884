/**
 * The pure, synchronous scheduler shared by the server and the simulator. Events come in
 * (`submit`, `cancel`, `finish`, `onCommandDone`, `onDeviceFailed`, `onDeviceUp`), each
 * with the current time as an argument; decisions go out as one `Command` per idle device
 * (`plan`). No I/O, no timers, no randomness: the same inputs give the same decisions.
 * Invariants and the reasoning behind them: DESIGN.md beside this file.
 */
import type {
  Command,
  CommandOutcome,
  DeviceId,
  DeviceProfile,
  FinishReason,
  FinishedRequest,
  ModelId,
  ModelProfile,
  RequestId,
  RequestSpec,
} from "../core/types.ts";
import { tokenDeadlineMs } from "../core/types.ts";
import type { Intent, PolicyRules } from "./intent.ts";
import { MemoryLedger } from "./MemoryLedger.ts";
import { Predictor } from "./Predictor.ts";
import { DEFAULT_MAX_QUOTA_MS } from "./quota.ts";
import { isIdleOn, planRequestIntents } from "./requestPolicy.ts";
import type { DeviceState, RequestRecord, SchedulerView, WaitingGroup } from "./state.ts";
import { hasMissedSlo, kvKey, kvReservationBytes, kvTokens, modelsInUse, nextTokenDeadlineMs, weightKey } from "./state.ts";
import { mayServe, planTokenIntent } from "./tokenPolicy.ts";

export type PolicyName = "token" | "request";
export const POLICY_NAMES: readonly PolicyName[] = ["token", "request"];

export interface SchedulerOptions {
  policy: PolicyName;
  /** Longest prompt slice evaluated in one command (bounds how long a device is blocked). */
  prefillChunkTokens: number;
  /** Requests of one model that wait and prefill together. */
  maxGroupSize: number;
  /** Longest turn of one model while others wait (Q_max). */
  maxQuotaMs: number;
  /**
   * Longest run of back-to-back decode steps in one command. Longer runs save a round trip
   * per token; shorter ones let new work in sooner.
   */
  decodeSliceMs: number;
  /**
   * Decode run when nothing else waits for the device (no other work, no waiting request):
   * the command is marked interruptible and the driver ends it when work arrives. Equal to
   * `decodeSliceMs` when the driver cannot interrupt (the simulator).
   */
  idleDecodeSliceMs?: number;
  /** Reject a request (HTTP 429) when its predicted wait exceeds this multiple of its TTFT target; 0 disables. */
  admissionTtftFactor: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = {
  policy: "token",
  prefillChunkTokens: 64,
  maxGroupSize: 8,
  maxQuotaMs: DEFAULT_MAX_QUOTA_MS,
  decodeSliceMs: 30,
  admissionTtftFactor: 0,
};

export type SubmitResult = { accepted: true } | { accepted: false; retryAfterMs: number; reason: string };

export interface DeviceSnapshot {
  id: DeviceId;
  down: boolean;
  busy: Command["kind"] | null;
  residentModels: { modelId: ModelId; ready: boolean }[];
  memoryBytes: number;
  weightBytes: number;
  kvBytes: number;
}

export interface SchedulerSnapshot {
  devices: DeviceSnapshot[];
  waitingByModel: Record<ModelId, number>;
  runningByModel: Record<ModelId, number>;
  hostKvRequests: number;
}

export class Scheduler implements SchedulerView {
  readonly models: ReadonlyMap<ModelId, ModelProfile>;
  readonly devices = new Map<DeviceId, DeviceState>();
  readonly requests = new Map<RequestId, RequestRecord>();
  readonly groups: WaitingGroup[] = [];
  readonly boundTo = new Map<DeviceId, Set<RequestRecord>>();
  readonly waiting = new Set<RequestRecord>();
  readonly holders = new Map<ModelId, number>();
  readonly parked = new Set<RequestRecord>();
  readonly predictor: Predictor;
  readonly options: SchedulerOptions;
  private seq = 0;

  constructor(models: ModelProfile[], devices: DeviceProfile[], options: Partial<SchedulerOptions> = {}) {
    this.models = new Map(models.map((m) => [m.id, m]));
    this.options = { ...DEFAULT_SCHEDULER_OPTIONS, ...options };
    this.predictor = new Predictor(this.models);
    for (const d of devices) {
      this.devices.set(d.id, {
        profile: d,
        ledger: new MemoryLedger(d.memoryBytes),
        resident: new Map(),
        running: null,
        pendingRelease: [],
        down: false,
        turn: null,
        lastWasPrefill: false,
        rrIndex: 0,
      });
      this.boundTo.set(d.id, new Set());
    }
    for (const m of models) {
      if (!devices.some((d) => mayServe(this.devices.get(d.id)!, m.id) && m.weightBytes <= d.memoryBytes))
        throw new Error(`model ${m.id} (${m.weightBytes} bytes) fits on no device`);
    }
  }

  // ---- events in -------------------------------------------------------------------

  /** A new request arrives. It waits in its model's group until a device takes it. */
  submit(spec: RequestSpec, nowMs: number): SubmitResult {
    const model = this.models.get(spec.modelId);
    if (!model) throw new Error(`unknown model ${spec.modelId}`);
    if (this.requests.has(spec.id)) throw new Error(`duplicate request id ${spec.id}`);
    if (spec.promptTokens < 1 || spec.maxOutputTokens < 1) throw new Error("a request needs at least one prompt and one output token");
    if (spec.promptTokens + spec.maxOutputTokens > model.contextTokens)
      throw new Error(`request ${spec.id} needs ${spec.promptTokens + spec.maxOutputTokens} tokens, context holds ${model.contextTokens}`);
    const slo = spec.slo ?? model.slo;
    if (this.options.admissionTtftFactor > 0) {
      const waitMs = this.predictedWaitMs(spec.modelId);
      if (waitMs > slo.ttftMs * this.options.admissionTtftFactor)
        return { accepted: false, retryAfterMs: Math.ceil(waitMs - slo.ttftMs), reason: `predicted wait ${Math.round(waitMs)} ms exceeds the TTFT target` };
    }
    const r: RequestRecord = { spec, slo, phase: "queued", prefilledTokens: 0, generatedTokens: 0, kv: "none", seq: this.seq++, missedSlo: false };
    this.requests.set(spec.id, r);
    this.waiting.add(r);
    const group = this.groups.find((g) => g.modelId === spec.modelId && g.requestIds.length < this.options.maxGroupSize);
    if (group) group.requestIds.push(spec.id);
    else this.groups.push({ modelId: spec.modelId, requestIds: [spec.id] });
    return { accepted: true };
  }

  /** The client went away: end the request now and free what it holds. */
  cancel(requestId: RequestId): FinishedRequest | undefined {
    return this.end(requestId, "cancelled");
  }

  /** The driver saw a stop condition (end-of-generation token, stop string). */
  finish(requestId: RequestId, reason: FinishReason, error?: string): FinishedRequest | undefined {
    return this.end(requestId, reason, error);
  }

  onCommandDone(deviceId: DeviceId, outcome: CommandOutcome, nowMs: number): FinishedRequest[] {
    const dev = this.device(deviceId);
    const cmd = dev.running;
    if (!cmd) throw new Error(`device ${deviceId} reported a command it was not running`);
    dev.running = null;
    const finished: FinishedRequest[] = [];
    const failed = new Set(outcome.failedRequestIds ?? []);
    for (const id of failed) {
      const f = this.end(id, "error", `${cmd.kind} failed`);
      if (f) finished.push(f);
    }
    const live = (id: RequestId): RequestRecord | undefined => (failed.has(id) ? undefined : this.requests.get(id));
    switch (cmd.kind) {
      case "load": {
        const r = dev.resident.get(cmd.modelId);
        if (r) {
          r.ready = true;
          r.lastUsedMs = nowMs;
        }
        this.predictor.observeLoad(cmd.modelId, outcome.durationMs);
        break;
      }
      case "evict":
        for (const m of cmd.modelIds) this.predictor.observeUnload(m, outcome.durationMs / cmd.modelIds.length);
        break;
      case "prefill": {
        this.touch(dev, cmd.modelId, nowMs);
        this.predictor.observePrefill(cmd.modelId, cmd.toToken - cmd.fromToken, outcome.durationMs);
        const r = live(cmd.requestId);
        if (!r) break;
        r.prefilledTokens = cmd.toToken;
        if (cmd.final) {
          r.phase = "decoding";
          if (nowMs > nextTokenDeadlineMs(r)) r.missedSlo = true;
          r.generatedTokens = 1;
          if (r.generatedTokens >= r.spec.maxOutputTokens) finished.push(this.end(r.spec.id, "length")!);
        }
        break;
      }
      case "decode": {
        this.touch(dev, cmd.modelId, nowMs);
        const steps = Math.max(1, outcome.steps ?? cmd.steps);
        this.predictor.observeDecode(cmd.modelId, cmd.requestIds.length, outcome.durationMs / steps);
        const stepMs = outcome.durationMs / steps;
        for (const id of cmd.requestIds) {
          const r = live(id);
          if (!r) continue;
          // Step i's token came at (start + i·step) and was due by the deadline of its index:
          // both grow linearly, so the first and the last step tell whether any came late.
          const n = Math.min(steps, r.spec.maxOutputTokens - r.generatedTokens);
          const due = (i: number) => tokenDeadlineMs(r.spec.arrivalMs, r.slo, r.generatedTokens + i - 1);
          if (n > 0 && (nowMs - outcome.durationMs + stepMs > due(1) || nowMs - outcome.durationMs + n * stepMs > due(n))) r.missedSlo = true;
          r.generatedTokens = Math.min(r.spec.maxOutputTokens, r.generatedTokens + steps);
          if (r.generatedTokens >= r.spec.maxOutputTokens) finished.push(this.end(id, "length")!);
        }
        break;
      }
      case "swapOut":
      case "swapIn": {
        let tokens = 0;
        for (const id of cmd.requestIds) {
          const r = this.requests.get(id);
          if (r) tokens += kvTokens(r);
        }
        this.predictor.observeKvSwap(cmd.modelId, tokens, outcome.durationMs);
        break;
      }
    }
    return finished;
  }

  /**
   * The device's worker died: requests with state on it fail, its memory is gone. Waiting
   * requests stay, and so do requests parked in the host tier: their KV is not on the
   * device, and it or another device resumes them.
   */
  onDeviceFailed(deviceId: DeviceId, error: string): FinishedRequest[] {
    const dev = this.device(deviceId);
    const finished: FinishedRequest[] = [];
    for (const r of [...this.boundTo.get(deviceId)!]) {
      if (r.kv === "host") continue;
      if (r.kv === "device") r.kv = "none"; // its memory is gone with the worker
      finished.push(this.end(r.spec.id, "error", error)!);
    }
    dev.down = true;
    dev.running = null;
    for (const m of dev.resident.keys()) this.countHolder(m, -1);
    dev.resident.clear();
    dev.ledger.clear();
    dev.pendingRelease = [];
    dev.turn = null;
    return finished;
  }

  onDeviceUp(deviceId: DeviceId): void {
    this.device(deviceId).down = false;
  }

  // ---- decisions out -----------------------------------------------------------------

  /** What the device should do next, or null to stay idle (until the next event). */
  plan(deviceId: DeviceId, nowMs: number): Command | null {
    const dev = this.device(deviceId);
    if (dev.running || dev.down) return null;
    let intents: Intent[];
    let rules: PolicyRules;
    if (this.options.policy === "token") {
      const planned = planTokenIntent(this, deviceId, nowMs, this.predictor, {
        maxQuotaMs: this.options.maxQuotaMs,
        decodeSliceMs: this.options.decodeSliceMs,
        idleDecodeSliceMs: this.options.idleDecodeSliceMs ?? this.options.decodeSliceMs,
        maxGroupSize: this.options.maxGroupSize,
        prefillChunkTokens: this.options.prefillChunkTokens,
      });
      intents = planned.intents;
      dev.turn = planned.turn;
      rules = { mayEvict: () => true };
    } else {
      intents = planRequestIntents(this, deviceId, this.predictor, this.options.decodeSliceMs);
      rules = { mayEvict: (m) => isIdleOn(this, deviceId, m) };
    }
    // The first intent memory allows runs; a blocked one must not stall runnable work.
    let cmd: Command | null = null;
    for (const intent of intents) {
      cmd = this.materialize(dev, intent, rules, nowMs);
      if (cmd) break;
    }
    if (cmd) {
      dev.running = cmd;
      if (cmd.kind === "prefill") dev.lastWasPrefill = true;
      if (cmd.kind === "decode") {
        dev.lastWasPrefill = false;
        dev.rrIndex++;
      }
    }
    return cmd;
  }

  /** Releases owed to a device that has nothing else to do (the driver may send them alone). */
  takeReleases(deviceId: DeviceId): RequestId[] {
    const dev = this.device(deviceId);
    const out = dev.pendingRelease;
    dev.pendingRelease = [];
    return out;
  }

  // ---- queries -----------------------------------------------------------------------

  isBusy(deviceId: DeviceId): boolean {
    return this.device(deviceId).running !== null;
  }

  get activeRequestCount(): number {
    return this.requests.size;
  }

  snapshot(): SchedulerSnapshot {
    const waitingByModel: Record<ModelId, number> = {};
    const runningByModel: Record<ModelId, number> = {};
    for (const m of this.models.keys()) {
      waitingByModel[m] = 0;
      runningByModel[m] = 0;
    }
    for (const r of this.requests.values()) {
      if (r.phase === "queued") waitingByModel[r.spec.modelId]!++;
      else runningByModel[r.spec.modelId]!++;
    }
    const devices = [...this.devices.values()].map((d) => ({
      id: d.profile.id,
      down: d.down,
      busy: d.running?.kind ?? null,
      residentModels: [...d.resident.entries()].map(([modelId, r]) => ({ modelId, ready: r.ready })),
      memoryBytes: d.ledger.capacityBytes,
      weightBytes: d.ledger.bytesOf("weights"),
      kvBytes: d.ledger.bytesOf("kv"),
    }));
    return { devices, waitingByModel, runningByModel, hostKvRequests: this.parked.size };
  }

  // ---- mechanism ---------------------------------------------------------------------

  private device(deviceId: DeviceId): DeviceState {
    const d = this.devices.get(deviceId);
    if (!d) throw new Error(`unknown device ${deviceId}`);
    return d;
  }

  private countHolder(modelId: ModelId, delta: number): void {
    const n = (this.holders.get(modelId) ?? 0) + delta;
    if (n > 0) this.holders.set(modelId, n);
    else this.holders.delete(modelId);
  }

  private touch(dev: DeviceState, modelId: ModelId, nowMs: number): void {
    const r = dev.resident.get(modelId);
    if (r) r.lastUsedMs = nowMs;
  }

  private withRelease<T extends Omit<Command, "release">>(dev: DeviceState, cmd: T): T & { release: RequestId[] } {
    const release = dev.pendingRelease;
    dev.pendingRelease = [];
    return { ...cmd, release };
  }

  /** Requests of `modelId` on this device whose KV sits in a device slot. */
  private onDevice(deviceId: DeviceId, modelId: ModelId): RequestRecord[] {
    const out: RequestRecord[] = [];
    for (const r of this.boundTo.get(deviceId)!) if (r.spec.modelId === modelId && r.kv === "device") out.push(r);
    return out;
  }

  private swapOut(dev: DeviceState, modelId: ModelId, reqs: RequestRecord[]): Command {
    for (const r of reqs) {
      r.kv = "host";
      this.parked.add(r);
      dev.ledger.free(kvKey(r.spec.id));
    }
    return this.withRelease(dev, { kind: "swapOut", deviceId: dev.profile.id, modelId, requestIds: reqs.map((r) => r.spec.id) });
  }

  /**
   * Make `needBytes` free on the device without touching `keepModel`: first swap out the
   * device KV of the least recently used other model, then evict it. Returns the swap-out
   * command still needed, or the models evicted (already off the ledger), or null when
   * the policy allows no more eviction.
   */
  private makeRoom(
    dev: DeviceState,
    keepModel: ModelId,
    needBytes: number,
    rules: PolicyRules,
  ): { command: Command } | { evicted: ModelId[] } | null {
    if (dev.ledger.fits(needBytes)) return { evicted: [] };
    // Models nobody on this device is using go first (nothing to park, nobody waiting to
    // come back), then the least recently used.
    const busy = modelsInUse(this, dev.profile.id);
    const victims = [...dev.resident.entries()]
      .filter(([id, r]) => id !== keepModel && r.ready && rules.mayEvict(id))
      .sort((a, b) => Number(busy.has(a[0])) - Number(busy.has(b[0])) || a[1].lastUsedMs - b[1].lastUsedMs || (a[0] < b[0] ? -1 : 1));
    let freed = 0;
    const evicted: ModelId[] = [];
    for (const [v] of victims) {
      if (dev.ledger.freeBytes + freed >= needBytes) break;
      const parked = this.onDevice(dev.profile.id, v);
      if (parked.length > 0) return { command: this.swapOut(dev, v, parked) };
      evicted.push(v);
      freed += this.models.get(v)!.weightBytes;
    }
    if (dev.ledger.freeBytes + freed < needBytes) return null;
    for (const v of evicted) {
      dev.ledger.free(weightKey(v));
      dev.resident.delete(v);
      this.countHolder(v, -1);
      if (dev.turn?.modelId === v) dev.turn = null;
    }
    return { evicted };
  }

  /**
   * Turn an intent into the next command that brings it closer: make room (swap KV to the
   * host tier, evict models), load the model, bring KV back, then run the step itself.
   * Memory is reserved in the ledger when the command is issued, so the ledger never
   * promises what a running command may still need.
   */
  private materialize(dev: DeviceState, intent: Intent, rules: PolicyRules, nowMs: number): Command | null {
    const deviceId = dev.profile.id;
    const modelId = intent.modelId;
    const model = this.models.get(modelId)!;
    const target = intent.kind === "prefill" ? [this.requests.get(intent.requestId)!] : intent.requestIds.map((id) => this.requests.get(id)!);
    const needKv = target.filter((r) => r.kv !== "device");
    const needKvBytes = needKv.reduce((s, r) => s + kvReservationBytes(model, r.spec), 0);
    const inIntent = new Set(target.map((r) => r.spec.id));

    if (!dev.resident.has(modelId)) {
      const room = this.makeRoom(dev, modelId, model.weightBytes + needKvBytes, rules);
      if (room === null) return null;
      if ("command" in room) return room.command;
      dev.ledger.allocate(weightKey(modelId), "weights", model.weightBytes);
      dev.resident.set(modelId, { ready: false, lastUsedMs: nowMs });
      this.countHolder(modelId, +1);
      return this.withRelease(dev, { kind: "load", deviceId, modelId, evict: room.evicted });
    }
    if (!dev.resident.get(modelId)!.ready) return null;

    // Slots: a model's context holds at most maxBatch sequences.
    const held = this.onDevice(deviceId, modelId);
    const over = held.length + needKv.length - model.maxBatch;
    if (over > 0) {
      // Park first who can no longer meet the SLO, then whose next token is due last.
      const victims = held
        .filter((r) => !inIntent.has(r.spec.id))
        .sort((a, b) => Number(hasMissedSlo(b, nowMs)) - Number(hasMissedSlo(a, nowMs)) || nextTokenDeadlineMs(b) - nextTokenDeadlineMs(a));
      if (victims.length < over) throw new Error(`intent for ${modelId} needs more than ${model.maxBatch} slots`);
      return this.swapOut(dev, modelId, victims.slice(0, over));
    }

    // KV memory for the requests coming onto the device.
    if (!dev.ledger.fits(needKvBytes)) {
      const room = this.makeRoom(dev, modelId, needKvBytes, rules);
      if (room === null) {
        // Never park one request of a model to make room for another of the same model: the
        // two would trade places forever. A decode step runs with the requests already here;
        // the others (and a new prompt) wait for memory that finishing requests free.
        const here = intent.kind === "decode" ? target.filter((r) => r.kv === "device") : [];
        if (here.length === 0 || intent.kind !== "decode") return null;
        return this.withRelease(dev, { kind: "decode", deviceId, modelId, requestIds: here.map((r) => r.spec.id), steps: intent.steps });
      }
      if ("command" in room) return room.command;
      if (room.evicted.length > 0) return this.withRelease(dev, { kind: "evict", deviceId, modelIds: room.evicted });
    }

    const parked = needKv.filter((r) => r.kv === "host");
    if (parked.length > 0) {
      for (const r of parked) {
        // KV in the host tier belongs to no device: a request parked by another device
        // resumes here and is bound here from now on.
        if (r.deviceId !== deviceId) {
          this.boundTo.get(r.deviceId!)!.delete(r);
          r.deviceId = deviceId;
          this.boundTo.get(deviceId)!.add(r);
        }
        dev.ledger.allocate(kvKey(r.spec.id), "kv", kvReservationBytes(model, r.spec));
        r.kv = "device";
        this.parked.delete(r);
      }
      return this.withRelease(dev, { kind: "swapIn", deviceId, modelId, requestIds: parked.map((r) => r.spec.id) });
    }

    if (intent.kind === "prefill") {
      const r = target[0]!;
      if (r.phase === "queued") this.bind(r, deviceId);
      if (r.kv === "none") {
        dev.ledger.allocate(kvKey(r.spec.id), "kv", kvReservationBytes(model, r.spec));
        r.kv = "device";
      }
      const from = r.prefilledTokens;
      const to = Math.min(r.spec.promptTokens, from + this.options.prefillChunkTokens);
      return this.withRelease(dev, {
        kind: "prefill",
        deviceId,
        modelId,
        requestId: r.spec.id,
        fromToken: from,
        toToken: to,
        final: to === r.spec.promptTokens,
      });
    }
    return this.withRelease(dev, {
      kind: "decode",
      deviceId,
      modelId,
      requestIds: intent.requestIds,
      steps: intent.steps,
      ...(intent.interruptible ? { interruptible: true } : {}),
    });
  }

  /** Take a waiting request out of its group and bind it to a device. */
  private bind(r: RequestRecord, deviceId: DeviceId): void {
    this.removeFromGroup(r);
    this.waiting.delete(r);
    r.phase = "prefilling";
    r.deviceId = deviceId;
    this.boundTo.get(deviceId)!.add(r);
  }

  private removeFromGroup(r: RequestRecord): void {
    const gi = this.groups.findIndex((g) => g.requestIds.includes(r.spec.id));
    if (gi < 0) return;
    const g = this.groups[gi]!;
    g.requestIds.splice(g.requestIds.indexOf(r.spec.id), 1);
    if (g.requestIds.length === 0) this.groups.splice(gi, 1);
  }

  /** The one path by which a request ends: frees its KV, leaves its group, reports once. */
  private end(requestId: RequestId, reason: FinishReason, error?: string): FinishedRequest | undefined {
    const r = this.requests.get(requestId);
    if (!r) return undefined;
    if (r.phase === "queued") this.removeFromGroup(r);
    this.waiting.delete(r);
    this.parked.delete(r);
    if (r.deviceId !== undefined) this.boundTo.get(r.deviceId)!.delete(r);
    if (r.deviceId !== undefined && r.kv !== "none") {
      const dev = this.devices.get(r.deviceId)!;
      if (r.kv === "device") dev.ledger.free(kvKey(requestId));
      if (!dev.down) dev.pendingRelease.push(requestId);
    }
    r.phase = "done";
    this.requests.delete(requestId);
    return error === undefined ? { requestId, reason } : { requestId, reason, error };
  }

  /** Rough wait a new request of this model would see: queued and running work spread over devices. */
  private predictedWaitMs(modelId: ModelId): number {
    let workMs = 0;
    const models = new Set<ModelId>();
    for (const r of this.requests.values()) {
      const m = r.spec.modelId;
      if (r.phase === "queued" || r.phase === "prefilling")
        workMs += this.predictor.prefillMs(m, r.spec.promptTokens - r.prefilledTokens);
      workMs += this.predictor.decodeStepMs(m, 1) * (r.spec.maxOutputTokens - r.generatedTokens);
      models.add(m);
    }
    models.add(modelId);
    const devs = [...this.devices.values()].filter((d) => !d.down && mayServe(d, modelId));
    for (const m of models) if (!devs.some((d) => d.resident.has(m))) workMs += this.predictor.loadMs(m);
    return workMs / Math.max(1, devs.length);
  }
}
