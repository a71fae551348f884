/**
 * The real-time driver: runs the pure scheduler against devices on the wall clock. It
 * submits requests, asks the scheduler what each idle device does next, carries that out
 * through the device port, feeds the outcome back and streams tokens to callers. Every
 * request ends exactly once, through `complete`.
 */
import { EventEmitter } from "node:events";
import type { Codecs } from "../core/codec.ts";
import { DeviceDownError, type DevicePort, type DeviceResult, type SampledToken } from "../core/devicePort.ts";
import { KvRestoreFailedError, OverloadedError, ShuttingDownError, SloWaitExceededError, type PitcherError } from "../core/errors.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { Command, DeviceId, FinishedRequest, ModelId, RequestId } from "../core/types.ts";
import type { Scheduler, SchedulerSnapshot } from "../scheduler/Scheduler.ts";
import { LiveRequest, type GenerationParams, type GenerationResult, type RequestOutcome } from "./LiveRequest.ts";
import {
  DEFAULT_RESTART_BACKOFF,
  type DeviceState,
  type DeviceStatus,
  type RestartBackoff,
  retryDelayMs,
  type SetTimer,
  stateAfter,
  wallTimer,
  withTimeout,
} from "./restartBackoff.ts";
import { runCommand } from "./runCommand.ts";

export type { DeviceState, DeviceStatus, GenerationParams, GenerationResult, RequestOutcome, RestartBackoff, SetTimer };

export interface CommandStart {
  deviceId: DeviceId;
  kind: Command["kind"];
  modelId?: ModelId;
  startMs: number;
  requestIds: RequestId[];
  /** Models this command drops from the device (evict, or load making room). */
  evictModelIds: ModelId[];
  /** Decode: steps planned, and whether arriving work may cut the run short. */
  plannedSteps?: number;
  interruptible?: boolean;
}

export interface CommandRecord extends CommandStart {
  endMs: number;
  /** KV swaps: bytes written or read. */
  bytes?: number;
  /** Decode: steps run. */
  steps?: number;
  /** The device died under the command or refused it as a whole. */
  crashed?: boolean;
}

export interface PoolEvents {
  outcome: [RequestOutcome];
  commandStart: [CommandStart];
  command: [CommandRecord];
  /** One scheduler decision (plan call) and how long it took. */
  decision: [{ deviceId: DeviceId; durationMs: number; planned: boolean }];
  device: [DeviceEvent];
}

/**
 * A device's life, as metrics, logs and the dashboard see it. `crashed`: the worker died
 * (its requests failed; `detail` says how) and a restart begins. `restart_failed`: start
 * attempt `attempt` failed (`detail`: why); the next one comes in `retryInMs`, and `state`
 * says whether the quick retries are spent (`down`). `restarted`: up again after `attempt`
 * attempts (`detail`: the crash it came back from).
 */
export interface DeviceEvent {
  deviceId: DeviceId;
  event: "crashed" | "restart_failed" | "restarted";
  detail: string;
  attempt?: number;
  retryInMs?: number;
  state?: Exclude<DeviceState, "up">;
}

export interface PoolOptions {
  /** The clock of arrivals, token times and deadlines, in ms (tests pass a fake one). Default: wall time since the pool was made. */
  now?: () => number;
  /** How restarts of a dead device are spaced (defaults: DEFAULT_RESTART_BACKOFF). */
  restartBackoff?: Partial<RestartBackoff>;
  /** Timers for restart retries and start time-outs (tests fire them by hand). Default: wall-clock timers. */
  setTimer?: SetTimer;
}

/** A device being brought back: one per device at most, so restarts never overlap. */
interface Restart {
  /** `down` once the quick retries failed; set when an attempt fails, so one under way keeps the state it started in. */
  state: Exclude<DeviceState, "up">;
  attempts: number;
  lastError: string;
  /** Pool time of the next attempt; null while one runs. */
  retryAtMs: number | null;
  cancelRetry: (() => void) | null;
}

export class Pool extends EventEmitter<PoolEvents> {
  private readonly byId = new Map<DeviceId, DevicePort>();
  private readonly live = new Map<RequestId, LiveRequest>();
  private readonly restarts = new Map<DeviceId, Restart>();
  /** Requests in the decode command each device runs now (to cancel them mid-command). */
  private readonly decoding = new Map<DeviceId, Set<RequestId>>();
  /** Devices running a long decode planned because nothing else waited. */
  private readonly interruptible = new Set<DeviceId>();
  private draining = false;
  private closed = false;
  private readonly backoff: RestartBackoff;
  private readonly setTimer: SetTimer;
  private readonly idleWaiters: (() => void)[] = [];
  readonly now: () => number;

  constructor(
    readonly scheduler: Scheduler,
    devices: DevicePort[],
    readonly models: Map<ModelId, ServedModel>,
    readonly codecs: Codecs,
    options: PoolOptions = {},
  ) {
    super();
    for (const d of devices) {
      this.byId.set(d.id, d);
      d.onCrash((detail) => void this.recover(d.id, detail));
    }
    const clockZero = performance.now();
    this.now = options.now ?? (() => performance.now() - clockZero);
    this.backoff = { ...DEFAULT_RESTART_BACKOFF, ...options.restartBackoff };
    this.setTimer = options.setTimer ?? wallTimer;
  }

  get activeRequests(): number {
    return this.live.size;
  }

  /** The pool's devices by id (tests and operators reach them through here). */
  get devices(): ReadonlyMap<DeviceId, DevicePort> {
    return this.byId;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  device(id: DeviceId): DevicePort {
    const d = this.byId.get(id);
    if (!d) throw new Error(`no device ${id} in the pool`);
    return d;
  }

  /** Whether the device is up, and if not, how bringing it back goes. */
  deviceStatus(id: DeviceId): DeviceStatus {
    const r = this.restarts.get(id);
    if (!r) return { state: "up", restartAttempts: 0, lastError: null, nextRetryInMs: null };
    return {
      state: r.state,
      restartAttempts: r.attempts,
      lastError: r.lastError,
      nextRetryInMs: r.retryAtMs === null ? null : Math.max(0, r.retryAtMs - this.now()),
    };
  }

  /** The scheduler's view: devices, resident models, memory, waiting and running requests. */
  snapshot(): SchedulerSnapshot {
    return this.scheduler.snapshot();
  }

  generate(params: GenerationParams): Promise<GenerationResult> {
    if (this.draining) return Promise.reject(new ShuttingDownError());
    const model = this.models.get(params.modelId)!;
    const id = params.requestId;
    const arrivalMs = this.now();
    const slo = params.slo ?? model.profile.slo;
    const codec = this.codecs.get(params.modelId);
    const [tenant, named] = params.tenant ? [{ tenant: params.tenant }, { tenant: params.tenant.id }] : [{}, {}];
    return new Promise<GenerationResult>((resolve, reject) => {
      const submitted = this.scheduler.submit(
        {
          id,
          modelId: params.modelId,
          arrivalMs,
          promptTokens: params.promptTokens.length,
          maxOutputTokens: params.maxTokens,
          slo,
          ...(params.embed ? { wholePrompt: true } : {}),
          ...tenant,
        },
        arrivalMs,
      );
      if (!submitted.accepted) {
        const retry = Math.max(1, Math.ceil(submitted.retryAfterMs / 1000));
        this.emit("outcome", { id, modelId: params.modelId, arrivalMs, tokenTimesMs: [], promptTokens: params.promptTokens.length, reason: "rejected", slo, ...named });
        reject(new OverloadedError(`Model ${params.modelId} is overloaded: ${submitted.reason}. Retry in ${retry} s.`, retry));
        return;
      }
      const r = new LiveRequest(params, arrivalMs, slo, codec, resolve, reject);
      this.live.set(id, r);
      // New work: long decodes planned while nothing waited end after their current step.
      for (const d of this.interruptible) this.device(d).yieldDecode();
      this.interruptible.clear();
      r.watchAbort(() => this.cancel(id));
      this.pump();
    });
  }

  /** The caller went away: end the request at once and free its memory. */
  cancel(id: RequestId): void {
    const f = this.scheduler.cancel(id, this.now());
    if (f) this.complete(f);
    this.pump();
  }

  /** Stop taking requests; resolves when every running request has ended. */
  async drain(): Promise<void> {
    this.draining = true;
    if (this.live.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- the loop ------------------------------------------------------------------------

  private pump(): void {
    // Requests that waited past the late-wait cap end before the devices are planned.
    for (const f of this.scheduler.expire(this.now())) this.complete(f, new SloWaitExceededError(f.error!, Math.max(1, Math.ceil(f.retryAfterMs / 1000))));
    for (const [deviceId, device] of this.devices) {
      if (this.restarts.has(deviceId) || this.scheduler.isBusy(deviceId)) continue;
      const t0 = performance.now();
      const cmd = this.scheduler.plan(deviceId, this.now());
      this.emit("decision", { deviceId, durationMs: performance.now() - t0, planned: cmd !== null });
      if (cmd) {
        void this.execute(device, cmd);
      } else {
        const release = this.scheduler.takeReleases(deviceId);
        // A failure here is the device's to report (onCrash); the releases die with it.
        if (release.length > 0) device.release(release).catch(() => {});
      }
    }
  }

  private async execute(device: DevicePort, cmd: Command): Promise<void> {
    const start = commandStart(cmd, this.now());
    this.emit("commandStart", start);
    if (cmd.kind === "decode") this.decoding.set(device.id, new Set(cmd.requestIds));
    if (cmd.kind === "decode" && cmd.interruptible) this.interruptible.add(device.id);
    let result: DeviceResult;
    try {
      // Decode steps stream their tokens while the command goes on: the device does not
      // wait for us, and text work (detokenize, stop strings, streaming) overlaps its compute.
      result = await runCommand(
        device,
        cmd,
        (id) => this.live.get(id)!,
        (tokens) => this.onTokens(tokens),
      );
    } catch (e) {
      const detail = e instanceof DeviceDownError ? e.detail : (e as Error).message;
      this.emit("command", { ...start, endMs: this.now(), crashed: true });
      void this.recover(device.id, detail);
      return;
    } finally {
      this.decoding.delete(device.id);
      this.interruptible.delete(device.id);
    }
    const endMs = this.now();
    const errors = new Map((result.failed ?? []).map((f) => [f.requestId, f.error]));
    if (result.first) this.acceptToken(result.first, endMs);
    if (result.embedding) this.live.get(result.embedding.requestId)?.acceptEmbedding(result.embedding.vector, endMs);
    const finished = this.scheduler.onCommandDone(
      device.id,
      { durationMs: result.durationMs, failedRequestIds: [...errors.keys()], ...(result.steps !== undefined ? { steps: result.steps } : {}) },
      endMs,
    );
    this.pump();
    if (result.first) this.streamText(result.first.requestId);
    for (const f of finished) {
      const error = errors.get(f.requestId);
      this.complete(f, error !== undefined ? new KvRestoreFailedError(error) : undefined);
    }
    this.emit("command", {
      ...start,
      endMs,
      ...(result.bytes !== undefined ? { bytes: result.bytes } : {}),
      ...(result.steps !== undefined ? { steps: result.steps } : {}),
    });
    if (finished.length > 0) this.pump();
  }

  private onTokens(tokens: SampledToken[]): void {
    const at = this.now();
    for (const t of tokens) this.acceptToken(t, at);
    for (const t of tokens) this.streamText(t.requestId);
  }

  /** Record a token; an end-of-generation token ends the request at once. */
  private acceptToken(t: SampledToken, atMs: number): void {
    const r = this.live.get(t.requestId);
    if (!r) return; // cancelled while the step ran
    if (r.accept(t, atMs)) this.finish(t.requestId);
  }

  /**
   * Turn the request's newest token into text and stream it. A stop string found here ends
   * the request; a step already sent for it is wasted, its token dropped.
   */
  private streamText(id: RequestId): void {
    const r = this.live.get(id);
    if (r?.streamNewest()) this.finish(id);
  }

  private finish(id: RequestId): void {
    const f = this.scheduler.finish(id, "stop", this.now());
    if (f) this.complete(f);
  }

  private complete(f: FinishedRequest, failure?: PitcherError): void {
    const r = this.live.get(f.requestId);
    if (!r) return;
    this.live.delete(f.requestId);
    // Ended while its device decodes it: take it out of the running command at once.
    for (const [deviceId, ids] of this.decoding) if (ids.has(f.requestId)) this.device(deviceId).cancel([f.requestId]);
    // The host tier is shared by every device: any of them removes what the request parked there.
    this.devices.values().next().value!.discard(f.requestId);
    this.emit("outcome", r.outcome(f, failure));
    r.settle(f, failure);
    if (this.live.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * A device died or broke: fail its requests (others take its waiting work, the scheduler
   * counts it as holding nothing), then bring it back, retrying with backoff until it starts.
   */
  async recover(deviceId: DeviceId, detail: string): Promise<void> {
    // One restart per device at a time; a death reported again while it runs is the same one.
    if (this.restarts.has(deviceId) || this.closed) return;
    this.restarts.set(deviceId, { state: "restarting", attempts: 0, lastError: detail, retryAtMs: null, cancelRetry: null });
    const message = `Device ${deviceId} failed (${detail}); the request was lost and can be retried`;
    this.emit("device", { deviceId, event: "crashed", detail });
    for (const f of this.scheduler.onDeviceFailed(deviceId, message, this.now())) this.complete(f);
    this.pump();
    await this.tryRestart(deviceId, detail);
  }

  /** One start attempt; a failed one schedules the next after the backoff delay. */
  private async tryRestart(deviceId: DeviceId, crashDetail: string): Promise<void> {
    const restart = this.restarts.get(deviceId)!;
    const device = this.device(deviceId);
    restart.retryAtMs = null;
    restart.cancelRetry = null;
    restart.attempts++;
    try {
      await device.stop();
      if (this.closed) return;
      const timeoutS = this.backoff.startTimeoutMs / 1000;
      await withTimeout(device.start(), this.backoff.startTimeoutMs, this.setTimer, `start timed out after ${timeoutS} s`);
    } catch (e) {
      if (this.closed) return;
      restart.lastError = (e as Error).message;
      const retryInMs = retryDelayMs(restart.attempts, this.backoff);
      restart.retryAtMs = this.now() + retryInMs;
      restart.cancelRetry = this.setTimer(() => void this.tryRestart(deviceId, crashDetail), retryInMs);
      restart.state = stateAfter(restart.attempts, this.backoff);
      this.emit("device", { deviceId, event: "restart_failed", detail: restart.lastError, attempt: restart.attempts, retryInMs, state: restart.state });
      return;
    }
    if (this.closed) {
      // Closed while it started: the worker must not outlive the pool.
      await device.stop();
      return;
    }
    this.restarts.delete(deviceId);
    this.scheduler.onDeviceUp(deviceId, this.now());
    this.emit("device", { deviceId, event: "restarted", detail: crashDetail, attempt: restart.attempts });
    this.pump();
  }

  async close(): Promise<void> {
    this.draining = true;
    this.closed = true;
    for (const r of this.restarts.values()) r.cancelRetry?.();
    for (const d of this.devices.values()) await d.stop();
  }
}

function commandStart(cmd: Command, startMs: number): CommandStart {
  return {
    deviceId: cmd.deviceId,
    kind: cmd.kind,
    ...("modelId" in cmd ? { modelId: cmd.modelId } : {}),
    startMs,
    requestIds: cmd.kind === "decode" || cmd.kind === "swapIn" || cmd.kind === "swapOut" ? [...cmd.requestIds] : cmd.kind === "prefill" ? [cmd.requestId] : [],
    evictModelIds: cmd.kind === "load" ? [...cmd.evict] : cmd.kind === "evict" ? [...cmd.modelIds] : [],
    ...(cmd.kind === "decode" ? { plannedSteps: cmd.steps, ...(cmd.interruptible ? { interruptible: true } : {}) } : {}),
  };
}
