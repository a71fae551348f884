/**
 * The engine's device: the device port carried out by a node-llama-cpp worker in a child
 * process. It translates each call into the worker protocol, knows the models' files and
 * end-of-generation tokens (so it marks `SampledToken.end`, and the worker drops an ended
 * sequence from a multi-step decode), parks KV in the pool's host tier, and reports a
 * worker's death as `DeviceDownError` and `onCrash`.
 */
import type { DecodeCall, DevicePort, DeviceResult, PrefillCall, SampledToken, TokenLogprobs } from "../core/devicePort.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { DeviceId, ModelId, RequestId } from "../core/types.ts";
import { DeviceProcess } from "./DeviceProcess.ts";
import type { HostKvTier } from "./HostKvTier.ts";
import type { WorkerCommand, WorkerInit, WorkerProgress, WorkerResult } from "./protocol.ts";

export interface EngineDeviceOptions {
  threads: number;
  gpu: WorkerInit["gpu"];
  /** The pool's host KV tier, shared by all its devices. */
  hostKv: HostKvTier;
  /** Models this device may be asked to load. */
  models: Iterable<ServedModel>;
  /** Longest prompt slice one prefill call evaluates: sizes each context's batch. */
  prefillChunkTokens: number;
  /**
   * A model's end-of-generation tokens (from its vocabulary), read when the model loads.
   * Absent: no token ends a request, and decodes always run every step (profiling).
   */
  endTokens?: (modelId: ModelId) => Iterable<number>;
}

export class EngineDevice implements DevicePort {
  private readonly process: DeviceProcess;
  private readonly models: Map<ModelId, ServedModel>;
  /** End tokens of each model as last loaded (what the worker was told). */
  private readonly ends = new Map<ModelId, ReadonlySet<number>>();
  private readonly crashListeners: ((detail: string) => void)[] = [];

  constructor(
    readonly id: DeviceId,
    private readonly options: EngineDeviceOptions,
  ) {
    this.models = new Map([...options.models].map((m) => [m.id, m]));
    this.process = new DeviceProcess(id, {
      threads: options.threads,
      gpu: options.gpu,
      kvDir: options.hostKv.dir,
      onExit: (detail) => {
        for (const l of this.crashListeners) l(detail);
      },
    });
  }

  /** The worker's process id while it runs (tests and operators). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** Kill the worker as a native abort would (tests and operators); `onCrash` fires. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.process.kill(signal);
  }

  start(): Promise<void> {
    return this.process.start();
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  onCrash(listener: (detail: string) => void): void {
    this.crashListeners.push(listener);
  }

  async load(modelId: ModelId, evict: ModelId[], release: RequestId[]): Promise<DeviceResult> {
    const m = this.models.get(modelId);
    if (!m) throw new Error(`model ${modelId} is not in this device's catalog`);
    const endTokens = new Set(this.options.endTokens?.(modelId) ?? []);
    this.ends.set(modelId, endTokens);
    const command: WorkerCommand = {
      op: "load",
      modelId,
      path: m.path,
      fingerprint: m.fingerprint,
      contextTokens: m.profile.contextTokens,
      slots: m.profile.maxBatch,
      // A decode step of every slot is one batch too.
      batchTokens: Math.max(this.options.prefillChunkTokens, m.profile.maxBatch),
      evict,
      endTokens: [...endTokens],
      ...(m.embedding ? { embedding: true } : {}),
    };
    return this.run(command, release);
  }

  evict(modelIds: ModelId[], release: RequestId[]): Promise<DeviceResult> {
    return this.run({ op: "evict", modelIds }, release);
  }

  async prefill(call: PrefillCall, release: RequestId[]): Promise<DeviceResult> {
    const { durationMs, result } = await this.process.call({ op: "prefill", ...call }, release);
    const token = result.tokens?.[0];
    if (result.embedding) return { durationMs, embedding: { requestId: call.requestId, vector: result.embedding } };
    return { durationMs, ...(call.final && token !== undefined ? { first: this.sampled(call.modelId, call.requestId, token, result.logprobs?.[0]) } : {}) };
  }

  decode(call: DecodeCall, release: RequestId[], onTokens: (tokens: SampledToken[]) => void): Promise<DeviceResult> {
    return this.run({ op: "decode", ...call }, release, (p) => onTokens(p.requestIds.map((id, i) => this.sampled(call.modelId, id, p.tokens[i]!, p.logprobs?.[i]))));
  }

  swapOut(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult> {
    return this.run({ op: "swapOut", modelId, requestIds }, release);
  }

  swapIn(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult> {
    return this.run({ op: "swapIn", modelId, requestIds }, release);
  }

  async release(requestIds: RequestId[]): Promise<void> {
    await this.process.call({ op: "release", requestIds });
  }

  yieldDecode(): void {
    this.process.yieldDecode();
  }

  cancel(requestIds: RequestId[]): void {
    this.process.cancel(requestIds);
  }

  discard(requestId: RequestId): void {
    this.options.hostKv.discard(requestId);
  }

  private sampled(modelId: ModelId, requestId: RequestId, token: number, logprobs?: TokenLogprobs | null): SampledToken {
    return { requestId, token, end: this.ends.get(modelId)?.has(token) ?? false, ...(logprobs ? { logprobs } : {}) };
  }

  private async run(command: WorkerCommand, release: RequestId[], onProgress?: (p: WorkerProgress["progress"][number]) => void): Promise<DeviceResult> {
    const { durationMs, result } = await this.process.call(command, release, onProgress);
    return { durationMs, ...outcomeOf(result) };
  }
}

function outcomeOf(r: WorkerResult): Omit<DeviceResult, "durationMs" | "first"> {
  return {
    ...(r.failed?.length ? { failed: r.failed } : {}),
    ...(r.bytes !== undefined ? { bytes: r.bytes } : {}),
    ...(r.steps !== undefined ? { steps: r.steps } : {}),
  };
}
