/**
 * The real-time driver: runs the pure scheduler against device workers on the wall clock.
 * It submits requests, asks the scheduler what each idle device does next, carries that
 * out through the device's worker, feeds the outcome back and streams tokens to callers.
 * Every request ends exactly once, through `complete`.
 */
import { EventEmitter } from "node:events";
import fs from "node:fs";
import {
  DeviceFailedError,
  KvRestoreFailedError,
  OverloadedError,
  PitcherError,
  ShuttingDownError,
} from "../core/errors.ts";
import type { Command, DeviceId, FinishedRequest, FinishReason, ModelId, RequestId, SloTargets } from "../core/types.ts";
import { DeviceCrashedError, type DeviceProcess } from "../engine/DeviceProcess.ts";
import { removeKvState } from "../engine/kvStateFile.ts";
import { loadCommand } from "../engine/loadCommand.ts";
import type { Sampling, WorkerCommand, WorkerResult } from "../engine/protocol.ts";
import type { ServedModel } from "../engine/resolveModels.ts";
import type { Tokenizers } from "../engine/Tokenizers.ts";
import type { Scheduler, SchedulerSnapshot } from "../scheduler/Scheduler.ts";
import { TextStream } from "./TextStream.ts";

/**
 * Longest a decoded token waits in the worker before it is streamed. Sending every step of
 * a 3 ms step costs ≈15% of single-stream speed on CPU (BENCHMARKS.md § 1).
 */
export const PROGRESS_EVERY_MS = 25;

export interface GenerationParams {
  /** Used in responses and logs; must be unique among running requests. */
  requestId: RequestId;
  modelId: ModelId;
  promptTokens: number[];
  maxTokens: number;
  sampling: Sampling;
  stop: string[];
  slo?: SloTargets;
  /** Streaming: called with each text delta as it becomes safe to send. */
  onDelta?: (text: string) => void;
  signal?: AbortSignal;
}

export interface GenerationResult {
  id: RequestId;
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
}

/** What the pool reports for each finished request (metrics and logs listen to it). */
export interface RequestOutcome {
  id: RequestId;
  modelId: ModelId;
  arrivalMs: number;
  tokenTimesMs: number[];
  promptTokens: number;
  reason: FinishReason | "rejected";
  slo: SloTargets;
  error?: string;
}

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
  /** The worker crashed or refused the command as a whole. */
  crashed?: boolean;
}

interface Live {
  id: RequestId;
  params: GenerationParams;
  arrivalMs: number;
  output: number[];
  tokenTimesMs: number[];
  text: TextStream;
  hostKv: boolean;
  slo: SloTargets;
  resolve(r: GenerationResult): void;
  reject(e: Error): void;
  onAbort?: () => void;
}

export interface PoolEvents {
  outcome: [RequestOutcome];
  commandStart: [CommandStart];
  command: [CommandRecord];
  /** One scheduler decision (plan call) and how long it took. */
  decision: [{ deviceId: DeviceId; durationMs: number; planned: boolean }];
  device: [{ deviceId: DeviceId; event: "crashed" | "restarted"; detail: string }];
}

export class Pool extends EventEmitter<PoolEvents> {
  private readonly live = new Map<RequestId, Live>();
  private readonly recovering = new Set<DeviceId>();
  /** Requests in the decode command each device runs now (to cancel them mid-command). */
  private readonly decoding = new Map<DeviceId, Set<RequestId>>();
  /** Devices running a long decode planned because nothing else waited. */
  private readonly interruptible = new Set<DeviceId>();
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly clockZero = performance.now();

  constructor(
    readonly scheduler: Scheduler,
    readonly devices: Map<DeviceId, DeviceProcess>,
    readonly models: Map<ModelId, ServedModel>,
    readonly tokenizers: Tokenizers,
    private readonly options: { prefillChunkTokens: number; kvDir: string },
  ) {
    super();
  }

  now(): number {
    return performance.now() - this.clockZero;
  }

  get activeRequests(): number {
    return this.live.size;
  }

  /** Folder of the host KV tier. */
  get kvDir(): string {
    return this.options.kvDir;
  }

  snapshot(): SchedulerSnapshot {
    return this.scheduler.snapshot();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  generate(params: GenerationParams): Promise<GenerationResult> {
    if (this.draining) return Promise.reject(new ShuttingDownError());
    const model = this.models.get(params.modelId)!;
    const id = params.requestId;
    const arrivalMs = this.now();
    const slo = params.slo ?? model.profile.slo;
    const tok = this.tokenizers.get(params.modelId);
    return new Promise<GenerationResult>((resolve, reject) => {
      const submitted = this.scheduler.submit(
        { id, modelId: params.modelId, arrivalMs, promptTokens: params.promptTokens.length, maxOutputTokens: params.maxTokens, slo },
        arrivalMs,
      );
      if (!submitted.accepted) {
        const retry = Math.max(1, Math.ceil(submitted.retryAfterMs / 1000));
        this.emit("outcome", { id, modelId: params.modelId, arrivalMs, tokenTimesMs: [], promptTokens: params.promptTokens.length, reason: "rejected", slo });
        reject(new OverloadedError(`Model ${params.modelId} is overloaded: ${submitted.reason}. Retry in ${retry} s.`, retry));
        return;
      }
      const r: Live = {
        id,
        params,
        arrivalMs,
        output: [],
        tokenTimesMs: [],
        text: new TextStream({ detokenize: (t, last) => tok.detokenize(t, last) }, params.stop),
        hostKv: false,
        slo,
        resolve,
        reject,
      };
      this.live.set(id, r);
      // New work: long decodes planned while nothing waited end after their current step.
      for (const d of this.interruptible) this.devices.get(d)!.yieldDecode();
      this.interruptible.clear();
      if (params.signal) {
        if (params.signal.aborted) {
          queueMicrotask(() => this.cancel(id));
        } else {
          r.onAbort = () => this.cancel(id);
          params.signal.addEventListener("abort", r.onAbort, { once: true });
        }
      }
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

  pump(): void {
    for (const [deviceId, device] of this.devices) {
      if (this.recovering.has(deviceId) || this.scheduler.isBusy(deviceId)) continue;
      const t0 = performance.now();
      const cmd = this.scheduler.plan(deviceId, this.now());
      this.emit("decision", { deviceId, durationMs: performance.now() - t0, planned: cmd !== null });
      if (cmd) {
        void this.execute(device, cmd);
      } else {
        const release = this.scheduler.takeReleases(deviceId);
        if (release.length > 0) device.call({ op: "release", requestIds: release }).catch(() => {});
      }
    }
  }

  private toWorker(cmd: Command): WorkerCommand {
    switch (cmd.kind) {
      case "load":
        return loadCommand(this.models.get(cmd.modelId)!, this.tokenizers.get(cmd.modelId).endTokens, this.options.prefillChunkTokens, cmd.evict);
      case "evict":
        return { op: "evict", modelIds: cmd.modelIds };
      case "prefill": {
        const r = this.live.get(cmd.requestId)!;
        return {
          op: "prefill",
          modelId: cmd.modelId,
          requestId: cmd.requestId,
          tokens: r.params.promptTokens.slice(cmd.fromToken, cmd.toToken),
          final: cmd.final,
          sampling: r.params.sampling,
        };
      }
      case "decode":
        return {
          op: "decode",
          modelId: cmd.modelId,
          steps: cmd.steps,
          // Tokens reach the client in bursts this far apart at most: a quarter of the
          // tightest TBT target in the batch, and never more than 25 ms.
          progressEveryMs: Math.min(PROGRESS_EVERY_MS, ...cmd.requestIds.map((id) => this.live.get(id)!.slo.tbtMs / 4)),
          items: cmd.requestIds.map((id) => {
            const r = this.live.get(id)!;
            return { requestId: id, token: r.output[r.output.length - 1]!, tokenIndex: r.output.length, sampling: r.params.sampling };
          }),
        };
      case "swapOut":
        return { op: "swapOut", modelId: cmd.modelId, requestIds: cmd.requestIds };
      case "swapIn":
        return { op: "swapIn", modelId: cmd.modelId, requestIds: cmd.requestIds };
    }
  }

  private async execute(device: DeviceProcess, cmd: Command): Promise<void> {
    const startMs = this.now();
    const start: CommandStart = {
      deviceId: device.id,
      kind: cmd.kind,
      ...("modelId" in cmd ? { modelId: cmd.modelId } : {}),
      startMs,
      requestIds: cmd.kind === "decode" || cmd.kind === "swapIn" || cmd.kind === "swapOut" ? [...cmd.requestIds] : cmd.kind === "prefill" ? [cmd.requestId] : [],
      evictModelIds: cmd.kind === "load" ? [...cmd.evict] : cmd.kind === "evict" ? [...cmd.modelIds] : [],
      ...(cmd.kind === "decode" ? { plannedSteps: cmd.steps, ...(cmd.interruptible ? { interruptible: true } : {}) } : {}),
    };
    this.emit("commandStart", start);
    // Decode steps stream their tokens while the command goes on: the worker does not wait
    // for us, and text work (detokenize, stop strings, streaming) overlaps its compute.
    const onProgress =
      cmd.kind === "decode"
        ? (p: { requestIds: RequestId[]; tokens: number[] }) => {
            const at = this.now();
            p.requestIds.forEach((id, i) => this.acceptToken(id, p.tokens[i]!, at));
            for (const id of p.requestIds) this.streamText(id);
          }
        : undefined;
    if (cmd.kind === "decode") this.decoding.set(device.id, new Set(cmd.requestIds));
    if (cmd.kind === "decode" && cmd.interruptible) this.interruptible.add(device.id);
    let reply: { durationMs: number; result: WorkerResult };
    try {
      reply = await device.call(this.toWorker(cmd), cmd.release, onProgress);
    } catch (e) {
      const detail = e instanceof DeviceCrashedError ? e.detail : (e as Error).message;
      this.emit("command", { ...start, endMs: this.now(), crashed: true });
      void this.recover(device, detail);
      return;
    } finally {
      this.decoding.delete(device.id);
      this.interruptible.delete(device.id);
    }
    const endMs = this.now();
    const failed = reply.result.failed ?? [];
    const failedIds = failed.map((f) => f.requestId);
    const errors = new Map(failed.map((f) => [f.requestId, f.error]));
    const firstToken = cmd.kind === "prefill" && cmd.final ? reply.result.tokens![0]! : undefined;
    if (firstToken !== undefined && cmd.kind === "prefill") this.acceptToken(cmd.requestId, firstToken, endMs);
    if (cmd.kind === "swapOut") for (const id of cmd.requestIds) this.live.get(id) && (this.live.get(id)!.hostKv = true);
    if (cmd.kind === "swapIn") for (const id of cmd.requestIds) if (!errors.has(id) && this.live.get(id)) this.live.get(id)!.hostKv = false;
    const finished = this.scheduler.onCommandDone(
      device.id,
      { durationMs: reply.durationMs, failedRequestIds: failedIds, ...(reply.result.steps !== undefined ? { steps: reply.result.steps } : {}) },
      endMs,
    );
    this.pump();
    if (firstToken !== undefined && cmd.kind === "prefill") this.streamText(cmd.requestId);
    for (const f of finished) this.complete(f, errors.has(f.requestId) ? new KvRestoreFailedError(errors.get(f.requestId)!) : undefined);
    this.emit("command", {
      ...start,
      endMs,
      ...(reply.result.bytes !== undefined ? { bytes: reply.result.bytes } : {}),
      ...(reply.result.steps !== undefined ? { steps: reply.result.steps } : {}),
    });
    if (finished.length > 0) this.pump();
  }

  /** Record a token; an end-of-generation token ends the request at once. */
  private acceptToken(id: RequestId, token: number, atMs: number): void {
    const r = this.live.get(id);
    if (!r) return; // cancelled while the step ran
    r.output.push(token);
    if (this.tokenizers.get(r.params.modelId).endTokens.has(token)) {
      const f = this.scheduler.finish(id, "stop", this.now());
      if (f) this.complete(f);
      return;
    }
    r.tokenTimesMs.push(atMs);
  }

  /**
   * Turn the request's newest token into text and stream it. A stop string found here ends
   * the request; a step already sent for it is wasted, its token dropped.
   */
  private streamText(id: RequestId): void {
    const r = this.live.get(id);
    if (!r) return;
    // Streams get one chunk per token (possibly empty while text is held back), so a
    // client can time every token.
    const delta = r.text.push(r.output[r.output.length - 1]!);
    r.params.onDelta?.(delta);
    if (r.text.stopped) {
      const f = this.scheduler.finish(id, "stop", this.now());
      if (f) this.complete(f);
    }
  }

  private complete(f: FinishedRequest, failure?: PitcherError): void {
    const r = this.live.get(f.requestId);
    if (!r) return;
    this.live.delete(f.requestId);
    // Ended while its device decodes it: take it out of the running command at once.
    for (const [deviceId, ids] of this.decoding) if (ids.has(f.requestId)) this.devices.get(deviceId)!.cancel([f.requestId]);
    if (r.onAbort) r.params.signal?.removeEventListener("abort", r.onAbort);
    if (r.hostKv) void removeKvState(this.options.kvDir, r.id);
    this.emit("outcome", {
      id: r.id,
      modelId: r.params.modelId,
      arrivalMs: r.arrivalMs,
      tokenTimesMs: r.tokenTimesMs,
      promptTokens: r.params.promptTokens.length,
      reason: f.reason,
      slo: r.slo,
      ...(failure || f.error ? { error: failure?.message ?? f.error } : {}),
    });
    if (f.reason === "stop" || f.reason === "length") {
      const tail = r.text.flush();
      if (tail) r.params.onDelta?.(tail);
      r.resolve({
        id: r.id,
        text: r.text.sent,
        finishReason: f.reason,
        promptTokens: r.params.promptTokens.length,
        completionTokens: r.output.length,
      });
    } else if (f.reason === "cancelled") {
      r.reject(new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error"));
    } else {
      r.reject(failure ?? new DeviceFailedError(f.error ?? "request failed on its device"));
    }
    if (this.live.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** A worker died or broke: fail its requests, start a fresh worker, resume. */
  async recover(device: DeviceProcess, detail: string): Promise<void> {
    if (this.recovering.has(device.id)) return;
    this.recovering.add(device.id);
    const message = `Device ${device.id} failed (${detail}); the request was lost and can be retried`;
    this.emit("device", { deviceId: device.id, event: "crashed", detail });
    for (const f of this.scheduler.onDeviceFailed(device.id, message, this.now())) this.complete(f);
    try {
      await device.stop();
      await device.start();
      this.scheduler.onDeviceUp(device.id, this.now());
      this.emit("device", { deviceId: device.id, event: "restarted", detail });
    } catch (e) {
      this.emit("device", { deviceId: device.id, event: "crashed", detail: `restart failed: ${(e as Error).message}` });
    } finally {
      this.recovering.delete(device.id);
    }
    this.pump();
  }

  async close(): Promise<void> {
    this.draining = true;
    for (const d of this.devices.values()) await d.stop();
    fs.rmSync(this.options.kvDir, { recursive: true, force: true });
  }
}
