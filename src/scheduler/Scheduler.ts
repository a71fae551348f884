/**
 * The pure, synchronous scheduler shared by the server and the simulator. Events come in
 * (`submit`, `cancel`, `finish`, `onCommandDone`, `onDeviceFailed`, `onDeviceUp`), each
 * with the current time as an argument; decisions go out as one `Command` per idle device
 * (`plan`). No I/O, no timers, no randomness: the same inputs give the same decisions.
 *
 * This file holds the events and the requests' lifecycle. What to run comes from the
 * policy (Policy.ts), how to make room for it from the residency mechanism (Residency.ts);
 * admission (admission.ts) and the observability snapshot (snapshot.ts) read the state.
 * Invariants and the reasoning behind them: DESIGN.md beside this file.
 */
import type { Command, CommandOutcome, DeviceId, DeviceProfile, FinishReason, FinishedRequest, ModelId, ModelProfile, RequestId, RequestSpec } from "../core/types.ts";
import { tokenDeadlineMs } from "../core/types.ts";
import { admit, predictedWaitMs, type SubmitResult } from "./admission.ts";
import { type ExpiredRequest, expireLate, LateWaitCap } from "./lateWait.ts";
import { FairShare } from "./fairShare.ts";
import { MemoryLedger } from "./MemoryLedger.ts";
import { DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from "./options.ts";
import { createPolicy, type Policy } from "./Policy.ts";
import { QuietDevices } from "./perRound.ts";
import { Predictor } from "./Predictor.ts";
import { Residency } from "./Residency.ts";
import { snapshot, type SchedulerSnapshot } from "./snapshot.ts";
import type { DeviceState, RequestRecord, SchedulerState, WaitingGroup } from "./state.ts";
import { kvKey, kvTokens, mayServe, nextTokenDeadlineMs } from "./state.ts";
// The built-in policies register themselves; a new policy is one more import here.
import "./tokenPolicy.ts";
import "./requestPolicy.ts";
import "./serverlessPolicy.ts";

export { DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from "./options.ts";
export { policyNames, registerPolicy, type Policy, type PolicyContext, type PolicyFactory } from "./Policy.ts";
export type { SubmitResult } from "./admission.ts";
export type { ExpiredRequest } from "./lateWait.ts";
export type { DeviceSnapshot, SchedulerSnapshot } from "./snapshot.ts";

export class Scheduler implements SchedulerState {
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
  readonly fairShare: FairShare | undefined;
  /** Moves with every change of the state (SchedulerView.version). */
  version = 0;
  private readonly policy: Policy;
  private readonly residency: Residency;
  private readonly lateWait: LateWaitCap;
  /** Idle devices with nothing to take (perRound.ts); absent when the policy gives no `openToOthers`. */
  private readonly quiet: QuietDevices | undefined;
  private seq = 0;

  /** Throws for an unknown policy name and for a model that fits on no device it may use. */
  constructor(models: ModelProfile[], devices: DeviceProfile[], options: Partial<SchedulerOptions> = {}) {
    this.models = new Map(models.map((m) => [m.id, m]));
    this.options = { ...DEFAULT_SCHEDULER_OPTIONS, ...options };
    this.predictor = new Predictor(this.models);
    for (const d of devices) {
      this.devices.set(d.id, { profile: d, ledger: new MemoryLedger(d.memoryBytes), resident: new Map(), running: null, pendingRelease: [], down: false });
      this.boundTo.set(d.id, new Set());
    }
    for (const m of models) {
      if (!devices.some((d) => mayServe(this.devices.get(d.id)!, m.id) && m.weightBytes <= d.memoryBytes))
        throw new Error(`model ${m.id} (${m.weightBytes} bytes) fits on no device`);
    }
    this.fairShare = this.options.fairShare ? new FairShare(this.models, this.predictor, this.options.fairShareWindowMs) : undefined;
    this.policy = createPolicy(this.options.policy, { view: this, predictor: this.predictor, options: this.options });
    this.residency = new Residency(this, this.policy, this.options.prefillChunkTokens);
    this.lateWait = new LateWaitCap(this.options.lateWaitCapFactor);
    const policy = this.policy;
    this.quiet = policy.openToOthers ? new QuietDevices(this, (g, nowMs) => policy.openToOthers!(g, nowMs)) : undefined;
  }

  // ---- events in -------------------------------------------------------------------
  // Every event takes the time, whether or not today's decisions use it, so that a driver
  // never has to know which do and a policy that needs it can have it.

  /** A new request arrives. It waits in its model's group until a device takes it. */
  submit(spec: RequestSpec, nowMs: number): SubmitResult {
    const model = this.models.get(spec.modelId);
    if (!model) throw new Error(`unknown model ${spec.modelId}`);
    if (this.requests.has(spec.id)) throw new Error(`duplicate request id ${spec.id}`);
    if (spec.promptTokens < 1 || spec.maxOutputTokens < 1) throw new Error("a request needs at least one prompt and one output token");
    if (spec.promptTokens + spec.maxOutputTokens > model.contextTokens)
      throw new Error(`request ${spec.id} needs ${spec.promptTokens + spec.maxOutputTokens} tokens, context holds ${model.contextTokens}`);
    const slo = spec.slo ?? model.slo;
    const fair = this.fairShare;
    const admitted = admit(this, this.predictor, spec, slo, this.options.admissionTtftFactor, nowMs, fair && ((o) => fair.startsBefore(spec.tenant, o)));
    if (!admitted.accepted) return admitted;
    this.version++;
    const r: RequestRecord = { spec, slo, phase: "queued", prefilledTokens: 0, generatedTokens: 0, kv: "none", seq: this.seq++, missedSlo: false };
    this.requests.set(spec.id, r);
    this.waiting.add(r);
    this.lateWait.noteWaiting(r);
    this.fairShare?.submitted(r);
    const group = this.groups.find((g) => g.modelId === spec.modelId && g.requestIds.length < this.options.maxGroupSize);
    if (group) group.requestIds.push(spec.id);
    else this.groups.push({ modelId: spec.modelId, requestIds: [spec.id] });
    return { accepted: true };
  }

  /** The client went away: end the request now and free what it holds. */
  cancel(requestId: RequestId, _nowMs: number): FinishedRequest | undefined {
    return this.end(requestId, "cancelled");
  }

  /** The driver saw a stop condition (end-of-generation token, stop string), or gave up on the request. */
  finish(requestId: RequestId, reason: FinishReason, _nowMs: number, error?: string): FinishedRequest | undefined {
    return this.end(requestId, reason, error);
  }

  /**
   * Time passes: requests that still wait for a device `lateWaitCapFactor` × their TTFT
   * target past their TTFT deadline end with an error and a retry time (lateWait.ts).
   * Drivers call it before they plan.
   */
  expire(nowMs: number): ExpiredRequest[] {
    return expireLate(this, this.predictor, this.lateWait, nowMs, (id, error) => this.end(id, "error", error)!);
  }

  /** The device finished its command, in `outcome.durationMs`: its results count, and the predictor learns. */
  onCommandDone(deviceId: DeviceId, outcome: CommandOutcome, nowMs: number): FinishedRequest[] {
    const dev = this.device(deviceId);
    const cmd = dev.running;
    if (!cmd) throw new Error(`device ${deviceId} reported a command it was not running`);
    this.version++;
    dev.running = null;
    this.fairShare?.charge(cmd, outcome.durationMs);
    const finished: FinishedRequest[] = [];
    const failed = new Set(outcome.failedRequestIds ?? []);
    for (const id of failed) {
      const f = this.end(id, "error", `${cmd.kind} failed`);
      if (f) finished.push(f);
    }
    switch (cmd.kind) {
      case "load":
        this.residency.loaded(dev, cmd.modelId, nowMs);
        this.predictor.observeLoad(cmd.modelId, outcome.durationMs);
        break;
      case "evict":
        for (const m of cmd.modelIds) this.predictor.observeUnload(m, outcome.durationMs / cmd.modelIds.length);
        break;
      case "prefill": {
        this.residency.touch(dev, cmd.modelId, nowMs);
        this.predictor.observePrefill(cmd.modelId, cmd.toToken - cmd.fromToken, outcome.durationMs);
        const r = failed.has(cmd.requestId) ? undefined : this.requests.get(cmd.requestId);
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
        this.residency.touch(dev, cmd.modelId, nowMs);
        const steps = Math.max(1, outcome.steps ?? cmd.steps);
        this.predictor.observeDecode(cmd.modelId, cmd.requestIds.length, outcome.durationMs / steps);
        const stepMs = outcome.durationMs / steps;
        for (const id of cmd.requestIds) {
          const r = failed.has(id) ? undefined : this.requests.get(id);
          if (!r) continue;
          // Step i's token came at (start + i·step) and was due by the deadline of its index:
          // both grow linearly, so the first and the last step tell whether any came late.
          const n = Math.min(steps, r.spec.maxOutputTokens - r.generatedTokens);
          const startMs = nowMs - outcome.durationMs;
          if (
            n > 0 &&
            (startMs + stepMs > tokenDeadlineMs(r.spec.arrivalMs, r.slo, r.generatedTokens) ||
              startMs + n * stepMs > tokenDeadlineMs(r.spec.arrivalMs, r.slo, r.generatedTokens + n - 1))
          )
            r.missedSlo = true;
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
  onDeviceFailed(deviceId: DeviceId, error: string, nowMs: number): FinishedRequest[] {
    const dev = this.device(deviceId);
    this.version++;
    this.quiet?.wake(dev);
    const finished: FinishedRequest[] = [];
    for (const r of [...this.boundTo.get(deviceId)!]) {
      if (r.kv === "host") continue;
      if (r.kv === "device") r.kv = "none"; // its memory is gone with the worker
      finished.push(this.end(r.spec.id, "error", error)!);
    }
    dev.down = true;
    dev.running = null;
    this.residency.lost(dev);
    dev.pendingRelease = [];
    this.policy.onDeviceFailed?.(deviceId, nowMs);
    return finished;
  }

  /** The device's worker is back (restarted, empty): it takes work from the next plan on. */
  onDeviceUp(deviceId: DeviceId, _nowMs: number): void {
    this.device(deviceId).down = false;
    this.version++;
  }

  // ---- decisions out -----------------------------------------------------------------

  /** What the device should do next, or null to stay idle (until the next event). */
  plan(deviceId: DeviceId, nowMs: number): Command | null {
    const dev = this.device(deviceId);
    if (dev.running || dev.down) return null;
    if (this.quiet?.nothingToTake(dev, nowMs)) {
      this.policy.onNothingToTake?.(deviceId, nowMs);
      return null;
    }
    // The first intent memory allows runs; a blocked one must not stall runnable work.
    let cmd: Command | null = null;
    for (const intent of this.policy.plan(deviceId, nowMs)) {
      cmd = this.residency.materialize(dev, intent, nowMs);
      if (cmd) break;
    }
    if (!cmd) return null;
    this.version++;
    // A prompt's first chunk takes the request out of the waiting line onto this device.
    if (cmd.kind === "prefill") {
      const r = this.requests.get(cmd.requestId)!;
      if (r.phase === "queued") this.bind(r, deviceId);
    }
    dev.running = cmd;
    this.policy.onIssued?.(deviceId, cmd, nowMs);
    return cmd;
  }

  /** Releases owed to a device that has nothing else to do (the driver may send them alone). */
  takeReleases(deviceId: DeviceId): RequestId[] {
    const dev = this.device(deviceId);
    const out = dev.pendingRelease;
    dev.pendingRelease = [];
    this.version++;
    return out;
  }

  // ---- queries -----------------------------------------------------------------------

  /**
   * False when planning the idle device now would return null and change nothing: it found
   * nothing to take at its last plan and nothing it could take has come since (perRound.ts).
   * A driver that plans every idle device after every event may skip it.
   */
  mayTakeWork(deviceId: DeviceId, nowMs: number): boolean {
    return this.quiet?.mayTakeWork(deviceId, nowMs) ?? true;
  }

  isBusy(deviceId: DeviceId): boolean {
    return this.device(deviceId).running !== null;
  }

  get activeRequestCount(): number {
    return this.requests.size;
  }

  snapshot(): SchedulerSnapshot {
    return snapshot(this);
  }

  /**
   * The wait admission predicts for a new request of this model with a prompt of
   * `promptTokens` arriving now (ms), a load included where no device holds it.
   */
  predictedWaitMs(modelId: ModelId, nowMs: number, promptTokens: number): number {
    return predictedWaitMs(this, this.predictor, modelId, nowMs, promptTokens, this.models.get(modelId)!.slo);
  }

  // ---- request lifecycle -------------------------------------------------------------

  private device(deviceId: DeviceId): DeviceState {
    const d = this.devices.get(deviceId);
    if (!d) throw new Error(`unknown device ${deviceId}`);
    return d;
  }

  /** Take a waiting request out of its group and bind it to a device. */
  private bind(r: RequestRecord, deviceId: DeviceId): void {
    this.removeFromGroup(r);
    this.waiting.delete(r);
    r.phase = "prefilling";
    r.deviceId = deviceId;
    this.fairShare?.started(r);
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
    this.version++;
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
    this.fairShare?.ended(requestId);
    return error === undefined ? { requestId, reason } : { requestId, reason, error };
  }
}
