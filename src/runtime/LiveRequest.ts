/**
 * One request while the pool runs it: its output tokens and their times, its text stream,
 * and the caller's promise. The pool decides when it ends; this record turns the ending
 * into the caller's result or error and the outcome metrics see.
 */
import type { ModelCodec } from "../core/codec.ts";
import type { SampledToken, Sampling } from "../core/devicePort.ts";
import { DeviceFailedError, PitcherError } from "../core/errors.ts";
import type { FinishedRequest, FinishReason, ModelId, RequestId, SloTargets, TenantRef } from "../core/types.ts";
import { TextStream } from "./TextStream.ts";

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
  /** Whose request it is (fair sharing in the scheduler; its name in logs and metrics). */
  tenant?: TenantRef;
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
  /** The API key's name, when keys are configured. */
  tenant?: string;
}

export class LiveRequest {
  /** Output tokens so far, an end-of-generation token included. */
  readonly output: number[] = [];
  /** When each streamed token arrived (end tokens are not streamed). */
  readonly tokenTimesMs: number[] = [];
  private readonly text: TextStream;
  private onAbort: (() => void) | undefined;

  constructor(
    readonly params: GenerationParams,
    readonly arrivalMs: number,
    readonly slo: SloTargets,
    codec: ModelCodec,
    private readonly resolve: (r: GenerationResult) => void,
    private readonly reject: (e: Error) => void,
  ) {
    this.text = new TextStream(codec, params.stop);
  }

  get id(): RequestId {
    return this.params.requestId;
  }

  /** Call `cancel` when the caller's signal aborts (at once if it already has). */
  watchAbort(cancel: () => void): void {
    const signal = this.params.signal;
    if (!signal) return;
    if (signal.aborted) {
      queueMicrotask(cancel);
      return;
    }
    this.onAbort = cancel;
    signal.addEventListener("abort", cancel, { once: true });
  }

  /** Record a sampled token; returns true when it is an end-of-generation token. */
  accept(t: SampledToken, atMs: number): boolean {
    this.output.push(t.token);
    if (t.end) return true;
    this.tokenTimesMs.push(atMs);
    return false;
  }

  /**
   * Stream the newest token's text; returns true when a stop string ends the request.
   * Streams get one chunk per token (possibly empty while text is held back), so a client
   * can time every token.
   */
  streamNewest(): boolean {
    const delta = this.text.push(this.output[this.output.length - 1]!);
    this.params.onDelta?.(delta);
    return this.text.stopped;
  }

  outcome(f: FinishedRequest, failure?: PitcherError): RequestOutcome {
    return {
      id: this.id,
      modelId: this.params.modelId,
      arrivalMs: this.arrivalMs,
      tokenTimesMs: this.tokenTimesMs,
      promptTokens: this.params.promptTokens.length,
      reason: f.reason,
      slo: this.slo,
      ...(failure || f.error ? { error: failure?.message ?? f.error } : {}),
      ...(this.params.tenant ? { tenant: this.params.tenant.id } : {}),
    };
  }

  /** The request ended: settle the caller's promise (once; the pool calls this once). */
  settle(f: FinishedRequest, failure?: PitcherError): void {
    if (this.onAbort) this.params.signal?.removeEventListener("abort", this.onAbort);
    if (f.reason === "stop" || f.reason === "length") {
      const tail = this.text.flush();
      if (tail) this.params.onDelta?.(tail);
      this.resolve({
        id: this.id,
        text: this.text.sent,
        finishReason: f.reason,
        promptTokens: this.params.promptTokens.length,
        completionTokens: this.output.length,
      });
    } else if (f.reason === "cancelled") {
      this.reject(new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error"));
    } else {
      this.reject(failure ?? new DeviceFailedError(f.error ?? "request failed on its device"));
    }
  }
}
