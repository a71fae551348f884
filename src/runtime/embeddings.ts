/**
 * Embeddings through the pool: each input is one request of the pool, scheduled like any
 * generation but prefill-only (`GenerationParams.embed`): the scheduler prefills its whole
 * input in one command and ends it there, and the device returns the input's vector instead
 * of a token. So an embedding model loads, waits its turn, is evicted and pools with the
 * generating models under the same scheduler and memory ledger.
 */
import { randomUUID } from "node:crypto";
import type { Codecs } from "../core/codec.ts";
import { ContextLengthError, InvalidRequestError, ModelNotFoundError, WrongModelKindError } from "../core/errors.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { ModelId } from "../core/types.ts";
import type { GenerationParams, GenerationResult } from "./Pool.ts";

/** The part of the pool embeddings use (`ServingPool` has it). */
export interface EmbeddingPool {
  readonly models: ReadonlyMap<ModelId, ServedModel>;
  generate(params: GenerationParams): Promise<GenerationResult>;
}

export interface EmbeddingRequest {
  modelId: ModelId;
  /** One vector per input, in order: a text, or token ids of the model's vocabulary. */
  inputs: (string | number[])[];
  /** Aborting it cancels every input still waiting or running (the client went away). */
  signal?: AbortSignal;
}

export interface EmbeddingResult {
  /** One per input, in the inputs' order, each of unit length. */
  vectors: number[][];
  /** Tokens of all inputs together (a text's as the model tokenizes it, BOS included). */
  promptTokens: number;
}

/**
 * Throws a `PitcherError` at once for a request refused before scheduling (unknown model, a
 * model that does not embed, an empty input, a token outside the vocabulary, an input
 * longer than the context); later refusals (overload, draining, failures) reject the result.
 */
export async function embedThroughPool(pool: EmbeddingPool, codecs: Codecs, request: EmbeddingRequest): Promise<EmbeddingResult> {
  const model = pool.models.get(request.modelId);
  if (!model) throw new ModelNotFoundError(request.modelId);
  if (!model.embedding)
    throw new WrongModelKindError(`The model '${model.id}' does not produce embeddings; GET /v1/models marks the models that do (meta.embedding).`, "model_cannot_embed");
  if (request.inputs.length === 0) throw new InvalidRequestError("input must hold at least one text or token array", "input");
  const codec = codecs.get(model.id);
  const contextTokens = model.profile.contextTokens;
  const tokenized = await Promise.all(
    request.inputs.map(async (input, i) => {
      const where = request.inputs.length === 1 ? "The input" : `Input ${i}`;
      if (input.length === 0) throw new InvalidRequestError(`${where} is empty`, "input");
      let tokens: number[];
      if (typeof input === "string") tokens = await codec.completionPrompt(input);
      else {
        tokens = input;
        const bad = tokens.find((t) => t >= model.vocabularySize);
        if (bad !== undefined) throw new InvalidRequestError(`Token id ${bad} is outside the model's vocabulary of ${model.vocabularySize} tokens`, "input");
      }
      // The scheduler reserves one output slot beside the prompt, as for any request.
      if (tokens.length >= contextTokens)
        throw new ContextLengthError(
          `This model's context holds ${contextTokens} tokens, but ${where.toLowerCase()} is ${tokens.length} tokens (at most ${contextTokens - 1} fit).`,
          "input",
        );
      return tokens;
    }),
  );

  // One failed input fails the request: the others are cancelled at once, not left running.
  const abort = new AbortController();
  const stop = () => abort.abort(request.signal?.reason);
  if (request.signal?.aborted) stop();
  else request.signal?.addEventListener("abort", stop, { once: true });
  const id = `embd-${randomUUID()}`;
  const runs = tokenized.map((promptTokens, i) => {
    const params: GenerationParams = {
      requestId: `${id}-${i}`,
      modelId: model.id,
      promptTokens,
      maxTokens: 1,
      sampling: { temperature: 0 },
      stop: [],
      embed: true,
      signal: abort.signal,
    };
    return pool.generate(params);
  });
  return Promise.all(runs).then(
    (results) => {
      request.signal?.removeEventListener("abort", stop);
      return { vectors: results.map(vectorOf), promptTokens: tokenized.reduce((n, t) => n + t.length, 0) };
    },
    (e: unknown) => {
      request.signal?.removeEventListener("abort", stop);
      abort.abort();
      // The other inputs end as cancelled; their rejections are expected and dropped.
      for (const r of runs) r.catch(() => {});
      throw e;
    },
  );
}

function vectorOf(r: GenerationResult): number[] {
  if (!r.embedding) throw new Error(`request ${r.id} ended without its embedding`);
  return r.embedding;
}
