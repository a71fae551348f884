/**
 * The one thing the HTTP API asks of the runtime: turn a chat or completion request into a
 * stream of text pieces and a result, and say what is served and how the pool is. The API
 * never tokenizes, never counts context and never looks at the scheduler; this does, over a
 * small port of the pool (so it is tested with a fake one).
 */
import { randomInt, randomUUID } from "node:crypto";
import type { ChatMessage, ChatToolsPrompt, ChatToolsRequest, Codecs, ToolCallSyntax } from "../core/codec.ts";
import type { Sampling } from "../core/devicePort.ts";
import { ContextLengthError, InvalidRequestError, ModelNotFoundError, WrongModelKindError } from "../core/errors.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { DeviceId, ModelId, RequestId, TenantRef } from "../core/types.ts";
import { embedThroughPool, type EmbeddingRequest, type EmbeddingResult } from "./embeddings.ts";
import type { TokenLogprob } from "./LiveRequest.ts";
import type { DeviceState, DeviceStatus, GenerationParams, GenerationResult } from "./Pool.ts";
import { refuseOversizedPrompt } from "./promptBytes.ts";

export type { EmbeddingRequest, EmbeddingResult, GenerationResult, TokenLogprob };

/** One piece of streamed text, with the logprobs of the token it came from (when asked; the final tail has none). */
export interface Piece {
  text: string;
  logprob?: TokenLogprob;
}

/** What a request asks to generate from: chat messages (through the model's template) or a prompt. */
export type ServingInput = { kind: "chat"; messages: ChatMessage[]; tools?: ChatToolsRequest } | { kind: "completion"; prompt: string | number[] };

export interface ServingRequest {
  modelId: ModelId;
  input: ServingInput;
  /**
   * Output tokens at most, as the client asked: more than the context holds after the prompt
   * is refused (`ContextLengthError` naming both numbers), never quietly cut.
   */
  maxTokens?: number;
  /** The request field `maxTokens` came from, for the error (default `max_tokens`). */
  maxTokensParam?: string;
  /** With no `maxTokens`: at most this many, cut to the room the context leaves; absent: all of that room. */
  defaultMaxTokens?: number;
  sampling: Sampling;
  /** The client's stop strings (empty ones are ignored); the chat template's are added. */
  stop: string[];
  /** Aborting it cancels the request at once (the client went away). */
  signal?: AbortSignal;
  /** Whose request it is (an API key's name and weight): fair sharing, logs, metrics. */
  tenant?: TenantRef;
  /**
   * Run once the prompt is counted, before the request reaches the pool: it may refuse
   * (reject with the error the client gets), and gives back what to call with the tokens
   * the request used when it ends (per-key limits and budgets).
   */
  admit?: (cost: { promptTokens: number; maxTokens: number }) => Promise<(usedTokens: number) => void>;
}

export interface Generation {
  /** `chatcmpl-…` or `cmpl-…`: the id the client gets back and the logs carry. */
  id: RequestId;
  promptTokens: number;
  /**
   * Text as it becomes safe to send: one piece per output token (possibly empty while text
   * is held back), then the held-back tail when the request ends. Ends when `result`
   * resolves; throws `result`'s error when it rejects, before any piece if it failed before one.
   */
  pieces: AsyncIterable<string>;
  /** The same pieces with their tokens' logprobs: read this or `pieces`, not both. */
  detailed: AsyncIterable<Piece>;
  result: Promise<GenerationResult>;
  /** A chat request offered tools: how the model writes calls (its output is constrained to them, or text with `auto`). */
  toolCallSyntax?: ToolCallSyntax;
}

export interface Health {
  status: "ok" | "draining";
  activeRequests: number;
  devices: DeviceHealth[];
}

/** One device: `up`, and (from a pool that restarts devices) its state; a device not up says how its restart goes. */
export interface DeviceHealth {
  id: DeviceId;
  up: boolean;
  state?: DeviceState;
  restartAttempts?: number;
  lastError?: string | null;
  nextRetryInMs?: number | null;
  residentModels: ModelId[];
}

/** What the API uses. */
export interface Serving {
  /**
   * Rejects with a `PitcherError` for a request refused before scheduling (unknown model,
   * prompt text over the byte cap, empty prompt, token outside the vocabulary, prompt as long
   * as the context); later refusals (overload, draining, failures) reject `result`.
   * Asynchronous because prompts are tokenized off the event loop.
   */
  generate(request: ServingRequest): Promise<Generation>;
  /** Vectors of the inputs from a model that embeds; refusals before scheduling reject, as `generate`'s do. */
  embed(request: EmbeddingRequest): Promise<EmbeddingResult>;
  models(): ServedModel[];
  model(id: ModelId): ServedModel | undefined;
  health(): Health;
  readonly draining: boolean;
}

/** The part of the pool the serving facade drives (`Pool` has it). */
export interface ServingPool {
  readonly models: ReadonlyMap<ModelId, ServedModel>;
  readonly isDraining: boolean;
  readonly activeRequests: number;
  generate(params: GenerationParams): Promise<GenerationResult>;
  snapshot(): { devices: { id: DeviceId; down: boolean; residentModels: { modelId: ModelId }[] }[] };
  /** How a device's restart goes (`Pool` has it; a pool without it reports `up` alone). */
  deviceStatus?(id: DeviceId): DeviceStatus;
}

export interface ServingOptions {
  /**
   * The seed of a sampled request that names none. Each request draws its own: llama.cpp
   * would seed from the clock in seconds, so identical requests in one second would repeat.
   */
  drawSeed?: () => number;
  /** Largest prompt text (UTF-8 bytes) taken, checked before tokenizing; none when absent. */
  maxPromptBytes?: number;
}

export class PoolServing implements Serving {
  private readonly drawSeed: () => number;
  private readonly maxPromptBytes: number | undefined;

  constructor(
    private readonly pool: ServingPool,
    private readonly codecs: Codecs,
    options: ServingOptions = {},
  ) {
    this.drawSeed = options.drawSeed ?? (() => randomInt(2 ** 31));
    this.maxPromptBytes = options.maxPromptBytes;
  }

  get draining(): boolean {
    return this.pool.isDraining;
  }

  models(): ServedModel[] {
    return [...this.pool.models.values()];
  }

  model(id: ModelId): ServedModel | undefined {
    return this.pool.models.get(id);
  }

  health(): Health {
    return {
      status: this.pool.isDraining ? "draining" : "ok",
      activeRequests: this.pool.activeRequests,
      devices: this.pool.snapshot().devices.map((d) => this.deviceHealth(d)),
    };
  }

  private deviceHealth(d: { id: DeviceId; down: boolean; residentModels: { modelId: ModelId }[] }): DeviceHealth {
    const residentModels = d.residentModels.map((m) => m.modelId);
    const s = this.pool.deviceStatus?.(d.id);
    if (!s) return { id: d.id, up: !d.down, residentModels };
    if (s.state === "up") return { id: d.id, up: true, state: "up", residentModels };
    return { id: d.id, up: false, state: s.state, restartAttempts: s.restartAttempts, lastError: s.lastError, nextRetryInMs: s.nextRetryInMs, residentModels };
  }

  async generate(request: ServingRequest): Promise<Generation> {
    const model = this.pool.models.get(request.modelId);
    if (!model) throw new ModelNotFoundError(request.modelId);
    if (model.embedding) throw new WrongModelKindError(`The model '${model.id}' is an embedding model: use POST /v1/embeddings`, "model_only_embeds");
    refuseOversizedPrompt(request.input, this.maxPromptBytes);
    const { promptTokens, templateStops, promptParam, tools } = await this.prompt(model, request.input);
    const contextTokens = model.profile.contextTokens;
    if (promptTokens.length >= contextTokens)
      throw new ContextLengthError(
        `This model's context holds ${contextTokens} tokens, but the prompt is ${promptTokens.length} tokens (at least one more is needed for output).`,
        promptParam,
      );
    const roomTokens = contextTokens - promptTokens.length;
    if (request.maxTokens !== undefined && request.maxTokens > roomTokens) {
      const param = request.maxTokensParam ?? "max_tokens";
      throw new ContextLengthError(
        `${param} is ${request.maxTokens}, but this model's context holds ${contextTokens} tokens and the prompt takes ${promptTokens.length}, which leaves room for ${roomTokens} output tokens.`,
        param,
      );
    }
    const bias = request.sampling.logitBias?.find(([t]) => t >= model.vocabularySize);
    if (bias) throw new InvalidRequestError(`logit_bias names token ${bias[0]}, outside the model's vocabulary of ${model.vocabularySize} tokens`, "logit_bias");
    const id = `${request.input.kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID()}`;
    const pieces = new PieceQueue();
    const maxTokens = request.maxTokens ?? Math.min(request.defaultMaxTokens ?? roomTokens, roomTokens);
    let streamed = 0;
    const params: GenerationParams = {
      requestId: id,
      modelId: request.modelId,
      promptTokens,
      maxTokens,
      // A sampled request without a seed gets one of its own (greedy needs none); the seed
      // also keeps its tokens exact across preemption, as a given seed does.
      sampling: {
        ...(request.sampling.temperature > 0 && request.sampling.seed === undefined ? { ...request.sampling, seed: this.drawSeed() } : request.sampling),
        ...(tools ? { grammar: tools.grammar } : {}),
      },
      stop: [...request.stop.filter((s) => s.length > 0), ...templateStops],
      onDelta: (text, logprob) => {
        streamed++;
        pieces.push(logprob ? { text, logprob } : { text });
      },
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.tenant ? { tenant: request.tenant } : {}),
    };
    const run = () => this.pool.generate(params);
    const admit = request.admit;
    // A request that ends without a result (failed, cancelled) is charged its prompt and the tokens it streamed.
    const result = admit
      ? admit({ promptTokens: promptTokens.length, maxTokens }).then((settle) => {
          const r = run();
          r.then(
            (g) => settle(g.promptTokens + g.completionTokens),
            () => settle(promptTokens.length + streamed),
          );
          return r;
        })
      : run();
    result.then(
      () => pieces.end(),
      (e: unknown) => pieces.fail(e),
    );
    return { id, promptTokens: promptTokens.length, pieces: texts(pieces), detailed: pieces, result, ...(tools ? { toolCallSyntax: tools.syntax } : {}) };
  }

  embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
    return embedThroughPool(this.pool, this.codecs, request);
  }

  private async prompt(model: ServedModel, input: ServingInput): Promise<{ promptTokens: number[]; templateStops: string[]; promptParam: string; tools?: ChatToolsPrompt }> {
    if (input.kind === "chat") {
      const { tokens, stopStrings, tools } = await this.codecs.get(model.id).chatPrompt(input.messages, input.tools);
      return { promptTokens: tokens, templateStops: stopStrings, promptParam: "messages", ...(tools ? { tools } : {}) };
    }
    let promptTokens: number[];
    if (typeof input.prompt === "string") {
      promptTokens = await this.codecs.get(model.id).completionPrompt(input.prompt);
    } else {
      promptTokens = input.prompt;
      const bad = promptTokens.find((t) => t >= model.vocabularySize);
      if (bad !== undefined) throw new InvalidRequestError(`Token id ${bad} is outside the model's vocabulary of ${model.vocabularySize} tokens`, "prompt");
    }
    if (promptTokens.length === 0) throw new InvalidRequestError("The prompt is empty", "prompt");
    return { promptTokens, templateStops: [], promptParam: "prompt" };
  }
}

/**
 * Pieces pushed by the pool, read by one consumer at its own pace. Buffered until read (a
 * non-streaming caller never reads them; they go with the request).
 */
class PieceQueue implements AsyncIterable<Piece> {
  private readonly buffered: Piece[] = [];
  private done = false;
  private error: { e: unknown } | null = null;
  private wake: (() => void) | null = null;

  push(piece: Piece): void {
    if (this.done) return;
    this.buffered.push(piece);
    this.notify();
  }

  end(): void {
    this.done = true;
    this.notify();
  }

  fail(e: unknown): void {
    this.error = { e };
    this.done = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Piece> {
    for (;;) {
      if (this.buffered.length > 0) {
        yield this.buffered.shift()!;
        continue;
      }
      if (this.error) throw this.error.e;
      if (this.done) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

async function* texts(pieces: AsyncIterable<Piece>): AsyncIterable<string> {
  for await (const p of pieces) yield p.text;
}
