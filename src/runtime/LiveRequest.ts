/**
 * One request while the pool runs it: its output tokens and their times, its text stream,
 * and the caller's promise. The pool decides when it ends; this record turns the ending
 * into the caller's result or error and the outcome metrics see.
 */
import type { ModelCodec } from "../core/codec.ts";
import type { SampledToken, Sampling, TokenLogprobs } from "../core/devicePort.ts";
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
  /**
   * Streaming: called with each text delta as it becomes safe to send; one call per output
   * token (with its logprobs when asked), then one for the held-back tail.
   */
  onDelta?: (text: string, logprob?: TokenLogprob) => void;
  signal?: AbortSignal;
  /** An embedding (runtime/embeddings.ts): the prompt's final prefill yields its vector, no text. */
  embed?: boolean;
  /** Whose request it is (fair sharing in the scheduler; its name in logs and metrics). */
  tenant?: TenantRef;
}

export interface GenerationResult {
  id: RequestId;
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
  /** An embedding request's vector (unit length). */
  embedding?: number[];
  /** One per output token (end tokens aside), when `sampling.logprobs` asked for them. */
  logprobs?: TokenLogprob[];
}

/** A token as the client sees it: its text, that text's UTF-8 bytes, and its log-probability. */
export interface NamedLogprob {
  token: string;
  bytes: number[];
  logprob: number;
}

export interface TokenLogprob extends NamedLogprob {
  /** The most likely tokens at this step, most likely first. */
  top: NamedLogprob[];
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
  /** Logprobs of the streamed tokens, when asked for. */
  readonly logprobs: TokenLogprob[] = [];
  private readonly text: TextStream;
  /** An embedding request's vector, once its final prefill ran. */
  private embedding: number[] | undefined;
  private onAbort: (() => void) | undefined;

  constructor(
    readonly params: GenerationParams,
    readonly arrivalMs: number,
    readonly slo: SloTargets,
    private readonly codec: ModelCodec,
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
    if (t.logprobs) this.logprobs.push(this.named(t.logprobs));
    return false;
  }

  /** An embedding request's vector arrived: it counts as the request's first (and only) output. */
  acceptEmbedding(vector: number[], atMs: number): void {
    this.embedding = vector;
    this.tokenTimesMs.push(atMs);
  }

  /** Name the step's tokens by the text each would add after the output before them. */
  private named(l: TokenLogprobs): TokenLogprob {
    // The context the text stream detokenizes with, so the tokens' texts add up to the text.
    const before = this.output.slice(-5, -1);
    const name = (token: number, logprob: number): NamedLogprob => {
      const text = this.codec.detokenize([token], before);
      return { token: text, bytes: [...Buffer.from(text, "utf8")], logprob };
    };
    return { ...name(this.output[this.output.length - 1]!, l.logprob), top: l.top.map((x) => name(x.token, x.logprob)) };
  }

  /**
   * Stream the newest token's text; returns true when a stop string ends the request.
   * Streams get one chunk per token (possibly empty while text is held back), so a client
   * can time every token.
   */
  streamNewest(): boolean {
    const delta = this.text.push(this.output[this.output.length - 1]!);
    const logprob = this.params.sampling.logprobs !== undefined ? this.logprobs[this.logprobs.length - 1] : undefined;
    this.params.onDelta?.(delta, logprob);
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
        ...(this.embedding ? { embedding: this.embedding } : {}),
        ...(this.params.sampling.logprobs !== undefined ? { logprobs: this.logprobs } : {}),
      });
    } else if (f.reason === "cancelled") {
      this.reject(new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error"));
    } else {
      this.reject(failure ?? new DeviceFailedError(f.error ?? "request failed on its device"));
    }
  }
}
