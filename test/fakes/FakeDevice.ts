/**
 * A device for tests: the device port without a model or a process. Tokens are a hash of
 * the sequence's history (so a lost or misplaced KV shows in the output), calls run one at
 * a time and cost what `costs` says on a fake clock, parked KV lives in a shared
 * FakeHostTier, and a test can hold a call at a point, crash the device, and read every
 * call it got.
 */
import { DeviceDownError, type DecodeCall, type DevicePort, type DeviceResult, type PrefillCall, type SampledToken, type Sampling } from "../../src/core/devicePort.ts";
import type { ServedModel } from "../../src/core/servedModel.ts";
import type { DeviceId, ModelId, RequestId } from "../../src/core/types.ts";
import { deferred, type Deferred } from "./deferred.ts";
import { FakeClock } from "./FakeClock.ts";
import type { FakeHostTier } from "./FakeHostTier.ts";

/** The end-of-generation token of every fake model unless told otherwise; hashed tokens never hit it. */
export const FAKE_END_TOKEN = 0;
/** Hashed tokens fall in 1..FAKE_VOCABULARY. */
export const FAKE_VOCABULARY = 1000;
/** Length of a fake embedding model's vectors. */
export const FAKE_EMBEDDING_DIMENSIONS = 8;

export interface FakeCosts {
  loadMs: number;
  evictMs: number;
  prefillMsPerToken: number;
  /** One decode step of one sequence, and what each further sequence adds. */
  decodeStepMs: number;
  decodeExtraPerSequenceMs: number;
  swapMsPerToken: number;
}

export const DEFAULT_FAKE_COSTS: FakeCosts = { loadMs: 100, evictMs: 5, prefillMsPerToken: 1, decodeStepMs: 10, decodeExtraPerSequenceMs: 1, swapMsPerToken: 0.01 };

export type FakeOp = "load" | "evict" | "prefill" | "decode" | "swapOut" | "swapIn" | "release";

/** One call as the device got it. */
export interface FakeCall {
  op: FakeOp | "cancel" | "yield" | "discard";
  modelId?: ModelId;
  /** Models a load or evict drops. */
  modelIds?: ModelId[];
  requestIds: RequestId[];
  release: RequestId[];
  /** Decode: steps asked for. */
  steps?: number;
}

export interface FakeDeviceOptions {
  hostTier: FakeHostTier;
  models: Iterable<ServedModel>;
  /** Moved by each call's cost; a fresh clock when absent. */
  clock?: FakeClock;
  costs?: Partial<FakeCosts>;
  /** A model's end-of-generation tokens; default [FAKE_END_TOKEN]. */
  endTokens?: (modelId: ModelId) => Iterable<number>;
  /** Sample this token instead of the hashed one (e.g. an end token at some index); undefined: hash. */
  script?: (s: { modelId: ModelId; requestId: RequestId; tokenIndex: number }) => number | undefined;
}

/** A held call: `reached` resolves when the call gets to the hold point; `release` lets it go on. */
export interface Hold {
  reached: Promise<void>;
  release(): void;
}

interface HoldPoint {
  op: FakeOp;
  modelId: ModelId | undefined;
  /** Decode: the hold point is before this step (0: before the first). Other calls: before they run. */
  step: number;
  reached: Deferred<void>;
  gate: Deferred<void>;
  used: boolean;
}

interface Resident {
  slots: number;
  /** Each sequence's history (prompt tokens and fed output tokens). */
  sequences: Map<RequestId, number[]>;
}

export class FakeDevice implements DevicePort {
  /** Every call, in the order the device got them. */
  readonly calls: FakeCall[] = [];
  readonly clock: FakeClock;
  private readonly costs: FakeCosts;
  private readonly catalog: Map<ModelId, ServedModel>;
  private readonly resident = new Map<ModelId, Resident>();
  private readonly crashListeners: ((detail: string) => void)[] = [];
  private readonly pending = new Set<Deferred<DeviceResult>>();
  private readonly holds: HoldPoint[] = [];
  private queue: Promise<void> = Promise.resolve();
  private running = false;
  /** Bumped at every start, stop and crash: calls of an older life stop where they are. */
  private life = 0;
  private cancelled = new Set<RequestId>();
  private yieldRequested = false;
  /** Starts still to fail, and with what; see `failStarts`. */
  private startFailures = 0;
  private startError = "";
  /** Every start() call, failed ones included. */
  startCalls = 0;

  constructor(
    readonly id: DeviceId,
    private readonly options: FakeDeviceOptions,
  ) {
    this.clock = options.clock ?? new FakeClock();
    this.costs = { ...DEFAULT_FAKE_COSTS, ...options.costs };
    this.catalog = new Map([...options.models].map((m) => [m.id, m]));
  }

  get up(): boolean {
    return this.running;
  }

  /** Models resident now. */
  residentModels(): ModelId[] {
    return [...this.resident.keys()];
  }

  /** Requests holding device KV now. */
  sequences(): RequestId[] {
    return [...this.resident.values()].flatMap((r) => [...r.sequences.keys()]);
  }

  /**
   * Hold the next `op` call (of `modelId`, when given) at a point: before it runs, or for a
   * decode before step `beforeStep` (1: after the first step's tokens went out).
   */
  hold(op: FakeOp, where: { modelId?: ModelId; beforeStep?: number } = {}): Hold {
    const h: HoldPoint = { op, modelId: where.modelId, step: where.beforeStep ?? 0, reached: deferred(), gate: deferred(), used: false };
    this.holds.push(h);
    return { reached: h.reached.promise, release: () => h.gate.resolve() };
  }

  /** Die as a killed worker does: pending calls reject with DeviceDownError, `onCrash` fires. */
  crash(detail = "killed"): void {
    if (!this.running) return;
    this.down(detail);
    for (const l of this.crashListeners) l(detail);
  }

  /** The next `count` starts fail with `message` (Infinity: every one from now on), as a worker that cannot come up. */
  failStarts(count: number, message = "worker failed to start"): void {
    this.startFailures = count;
    this.startError = message;
  }

  async start(): Promise<void> {
    this.startCalls++;
    this.down("restarted");
    if (this.startFailures > 0) {
      this.startFailures--;
      throw new Error(this.startError);
    }
    this.running = true;
  }

  async stop(): Promise<void> {
    this.down("stopped");
  }

  onCrash(listener: (detail: string) => void): void {
    this.crashListeners.push(listener);
  }

  load(modelId: ModelId, evict: ModelId[], release: RequestId[]): Promise<DeviceResult> {
    this.calls.push({ op: "load", modelId, modelIds: evict, requestIds: [], release });
    return this.enqueue("load", modelId, release, async () => {
      for (const m of evict) this.resident.delete(m);
      const m = this.catalog.get(modelId);
      if (!m) throw new Error(`model ${modelId} is not in this device's catalog`);
      if (this.resident.has(modelId)) return { durationMs: 0 };
      this.resident.set(modelId, { slots: m.profile.maxBatch, sequences: new Map() });
      return { durationMs: this.costs.loadMs };
    });
  }

  evict(modelIds: ModelId[], release: RequestId[]): Promise<DeviceResult> {
    this.calls.push({ op: "evict", modelIds, requestIds: [], release });
    return this.enqueue("evict", undefined, release, async () => {
      for (const m of modelIds) this.resident.delete(m);
      return { durationMs: this.costs.evictMs * modelIds.length };
    });
  }

  prefill(call: PrefillCall, release: RequestId[]): Promise<DeviceResult> {
    this.calls.push({ op: "prefill", modelId: call.modelId, requestIds: [call.requestId], release });
    return this.enqueue("prefill", call.modelId, release, async () => {
      const embedder = this.catalog.get(call.modelId)?.embedding === true;
      if (embedder !== (call.embed === true)) throw new Error(embedder ? `model ${call.modelId} only embeds` : `model ${call.modelId} does not embed`);
      const seq = this.sequenceFor(call.modelId, call.requestId);
      seq.push(...call.tokens);
      const durationMs = this.costs.prefillMsPerToken * call.tokens.length;
      if (!call.final) return { durationMs };
      if (call.embed) {
        // As the engine: the vector of the whole input, and nothing kept on the device.
        this.loaded(call.modelId).sequences.delete(call.requestId);
        return { durationMs, embedding: { requestId: call.requestId, vector: hashedEmbedding(this.fingerprint(call.modelId), seq) } };
      }
      return { durationMs, first: this.sample(call.modelId, call.requestId, seq, call.sampling, 0) };
    });
  }

  decode(call: DecodeCall, release: RequestId[], onTokens: (tokens: SampledToken[]) => void): Promise<DeviceResult> {
    this.calls.push({ op: "decode", modelId: call.modelId, requestIds: call.items.map((it) => it.requestId), release, steps: call.steps });
    return this.enqueue("decode", call.modelId, release, async (life) => {
      const m = this.loaded(call.modelId);
      let items = call.items.map((it) => ({ ...it }));
      for (const it of items) if (!m.sequences.has(it.requestId)) throw new Error(`decode: ${it.requestId} holds no sequence`);
      let step = 0;
      let durationMs = 0;
      for (; step < call.steps && items.length > 0; step++) {
        await this.checkpoint("decode", call.modelId, step, life);
        if (life !== this.life) break; // died under the run (a listener crashed it)
        const tokens = items.map((it) => {
          const seq = m.sequences.get(it.requestId)!;
          seq.push(it.token);
          return this.sample(call.modelId, it.requestId, seq, it.sampling, it.tokenIndex);
        });
        const stepMs = this.costs.decodeStepMs + this.costs.decodeExtraPerSequenceMs * (items.length - 1);
        durationMs += stepMs;
        this.clock.advance(stepMs);
        onTokens(tokens);
        // Ended and cancelled sequences leave the run, as in the engine.
        items = items.map((it, i) => ({ ...it, token: tokens[i]!.token, tokenIndex: it.tokenIndex + 1 })).filter((it, i) => !tokens[i]!.end && !this.cancelled.has(it.requestId));
        if (this.yieldRequested) {
          step++;
          break;
        }
      }
      // The steps' time already went by on the clock.
      return { durationMs, steps: step, advanced: true };
    });
  }

  swapOut(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult> {
    this.calls.push({ op: "swapOut", modelId, requestIds, release });
    return this.enqueue("swapOut", modelId, release, async () => {
      const m = this.loaded(modelId);
      let tokens = 0;
      for (const id of requestIds) {
        const seq = m.sequences.get(id);
        if (!seq) throw new Error(`swap out: ${id} holds no sequence`);
        this.options.hostTier.park(id, this.fingerprint(modelId), seq);
        m.sequences.delete(id);
        tokens += seq.length;
      }
      return { durationMs: this.costs.swapMsPerToken * tokens, bytes: tokens * this.kvBytesPerToken(modelId) };
    });
  }

  swapIn(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult> {
    this.calls.push({ op: "swapIn", modelId, requestIds, release });
    return this.enqueue("swapIn", modelId, release, async () => {
      this.loaded(modelId);
      let tokens = 0;
      const failed: { requestId: RequestId; error: string }[] = [];
      for (const id of requestIds) {
        let history: number[];
        try {
          history = this.options.hostTier.read(id, this.fingerprint(modelId));
        } catch (e) {
          failed.push({ requestId: id, error: (e as Error).message });
          continue;
        }
        this.sequenceFor(modelId, id).push(...history);
        this.options.hostTier.remove(id);
        tokens += history.length;
      }
      return { durationMs: this.costs.swapMsPerToken * tokens, bytes: tokens * this.kvBytesPerToken(modelId), ...(failed.length ? { failed } : {}) };
    });
  }

  async release(requestIds: RequestId[]): Promise<void> {
    this.calls.push({ op: "release", requestIds, release: [] });
    await this.enqueue("release", undefined, requestIds, async () => ({ durationMs: 0 }));
  }

  yieldDecode(): void {
    this.calls.push({ op: "yield", requestIds: [], release: [] });
    if (this.running) this.yieldRequested = true;
  }

  cancel(requestIds: RequestId[]): void {
    this.calls.push({ op: "cancel", requestIds, release: [] });
    if (this.running) for (const id of requestIds) this.cancelled.add(id);
  }

  discard(requestId: RequestId): void {
    this.calls.push({ op: "discard", requestIds: [requestId], release: [] });
    this.options.hostTier.remove(requestId);
  }

  // ---- mechanism -------------------------------------------------------------------------

  /**
   * Run calls one at a time, in order, as a worker does; releases go first. A call of a
   * life that ended (crash, stop) never runs, and one under way stops at its next hold.
   */
  private enqueue(op: FakeOp, modelId: ModelId | undefined, release: RequestId[], run: (life: number) => Promise<DeviceResult & { advanced?: boolean }>): Promise<DeviceResult> {
    if (!this.running) return Promise.reject(new DeviceDownError(this.id, "not running"));
    const life = this.life;
    const d = deferred<DeviceResult>();
    this.pending.add(d);
    this.queue = this.queue.then(async () => {
      if (life !== this.life) return;
      try {
        for (const id of release) this.releaseSequence(id);
        if (op !== "decode") await this.checkpoint(op, modelId, 0, life);
        const { advanced, ...result } = await run(life);
        if (life !== this.life) return;
        if (!advanced) this.clock.advance(result.durationMs);
        this.pending.delete(d);
        d.resolve(result);
      } catch (e) {
        if (life !== this.life) return;
        this.pending.delete(d);
        d.reject(e as Error);
      } finally {
        if (life === this.life) {
          // Cleared when a command ends, not when it starts: a yield may come before its decode.
          this.cancelled = new Set();
          this.yieldRequested = false;
        }
      }
    });
    return d.promise;
  }

  /** Wait at a hold point set for this call, if any; throws when the device died meanwhile. */
  private async checkpoint(op: FakeOp, modelId: ModelId | undefined, step: number, life: number): Promise<void> {
    const h = this.holds.find((x) => !x.used && x.op === op && x.step === step && (x.modelId === undefined || x.modelId === modelId));
    if (!h) return;
    h.used = true;
    h.reached.resolve();
    await h.gate.promise;
    if (life !== this.life) throw new DeviceDownError(this.id, "died during the call");
  }

  private down(detail: string): void {
    this.running = false;
    this.life++;
    this.resident.clear();
    this.cancelled = new Set();
    this.yieldRequested = false;
    const err = new DeviceDownError(this.id, detail);
    for (const d of this.pending) d.reject(err);
    this.pending.clear();
    // Held calls of the old life go on only to find it over.
    for (const h of this.holds) if (h.used) h.gate.resolve();
  }

  private loaded(modelId: ModelId): Resident {
    const m = this.resident.get(modelId);
    if (!m) throw new Error(`model ${modelId} is not loaded on this device`);
    return m;
  }

  private sequenceFor(modelId: ModelId, requestId: RequestId): number[] {
    const m = this.loaded(modelId);
    let seq = m.sequences.get(requestId);
    if (seq) return seq;
    if (m.sequences.size >= m.slots) throw new Error(`no free sequence slot for ${requestId}`);
    seq = [];
    m.sequences.set(requestId, seq);
    return seq;
  }

  private releaseSequence(requestId: RequestId): void {
    for (const m of this.resident.values()) m.sequences.delete(requestId);
  }

  /** What the model's file is: models of one file sample alike and share parked KV, as in the engine. */
  private fingerprint(modelId: ModelId): string {
    return this.catalog.get(modelId)!.fingerprint;
  }

  private kvBytesPerToken(modelId: ModelId): number {
    return this.catalog.get(modelId)!.profile.kvBytesPerToken;
  }

  private sample(modelId: ModelId, requestId: RequestId, history: number[], s: Sampling, tokenIndex: number): SampledToken {
    const token = this.options.script?.({ modelId, requestId, tokenIndex }) ?? hashedToken(this.fingerprint(modelId), history, s, tokenIndex);
    const ends = new Set(this.options.endTokens?.(modelId) ?? [FAKE_END_TOKEN]);
    return { requestId, token, end: ends.has(token) };
  }
}

/** A fake embedding model's vector of `input`: hashed from the model's file and the tokens, unit length. */
export function hashedEmbedding(fingerprint: string, input: number[]): number[] {
  const v = Array.from({ length: FAKE_EMBEDDING_DIMENSIONS }, (_, d) => hashedToken(fingerprint, [...input, d], { temperature: 0 }, 0) - FAKE_VOCABULARY / 2);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** The token a fake model samples after `history`: FNV-1a of the model's file and the history (and the step seed when sampling). */
export function hashedToken(fingerprint: string, history: number[], s: Sampling, tokenIndex: number): number {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h = Math.imul(h ^ (x & 0xffff), 0x01000193) >>> 0;
    h = Math.imul(h ^ (x >>> 16), 0x01000193) >>> 0;
  };
  for (const c of fingerprint) mix(c.charCodeAt(0));
  for (const t of history) mix(t);
  if (s.temperature > 0) mix(((s.seed ?? 0) + tokenIndex * 7919) >>> 0);
  return 1 + (h % FAKE_VOCABULARY);
}
