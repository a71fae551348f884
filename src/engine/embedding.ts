/**
 * The device worker's embedding models (`/v1/embeddings`). An embedding model is loaded as
 * node-llama-cpp's embedding context: one sequence, pooled as the model's GGUF says
 * (`<arch>.pooling_type`: mean, CLS, last; none means the last token's state), the whole
 * context as one batch, since a pooled vector is computed over one batch at once.
 *
 * The scheduler sends an embedding's prompt in one prefill (`RequestSpec.wholePrompt`); were
 * it cut into chunks, the chunks are held here and embedded together with the last one, so
 * the vector never depends on how the input was cut. Nothing stays on the device afterwards.
 */
import type { Llama, LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import type { ModelId, RequestId } from "../core/types.ts";

interface Embedder {
  model: LlamaModel;
  context: LlamaEmbeddingContext;
  /** Inputs whose earlier chunks came, by request. */
  pending: Map<RequestId, number[]>;
}

const embedders = new Map<ModelId, Embedder>();

export function isEmbedder(modelId: ModelId): boolean {
  return embedders.has(modelId);
}

export async function loadEmbedder(llama: Llama, load: { modelId: ModelId; path: string; contextTokens: number; threads: number }): Promise<void> {
  const model = await llama.loadModel({ modelPath: load.path, useMmap: true });
  try {
    // Room for the BOS and EOS the model's tokenizer may add to an input of up to
    // contextTokens - 1 tokens (what the scheduler admits: prompt plus one output).
    const contextSize = load.contextTokens + 2;
    const context = await model.createEmbeddingContext({ contextSize, batchSize: contextSize, threads: load.threads });
    embedders.set(load.modelId, { model, context, pending: new Map() });
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/** Drop the model if it is an embedder here; false when it is not. */
export async function unloadEmbedder(modelId: ModelId): Promise<boolean> {
  const e = embedders.get(modelId);
  if (!e) return false;
  embedders.delete(modelId);
  await e.context.dispose();
  await e.model.dispose();
  return true;
}

/** Ended requests: forget their held chunks. */
export function releaseEmbeddings(requestIds: RequestId[]): void {
  for (const e of embedders.values()) for (const id of requestIds) e.pending.delete(id);
}

/**
 * One prefill chunk of an embedding: held until the last, which returns the vector of the
 * whole input at unit length (as OpenAI's are, so a dot product is the cosine).
 */
export async function embedChunk(call: { modelId: ModelId; requestId: RequestId; tokens: number[]; final: boolean; embed?: boolean }): Promise<number[] | undefined> {
  const e = embedders.get(call.modelId);
  if (!e) throw new Error(`model ${call.modelId} is not loaded on this device as an embedding model`);
  if (!call.embed) throw new Error(`model ${call.modelId} only embeds; it generates no tokens`);
  const input = [...(e.pending.get(call.requestId) ?? []), ...call.tokens];
  if (!call.final) {
    e.pending.set(call.requestId, input);
    return undefined;
  }
  e.pending.delete(call.requestId);
  const { vector } = await e.context.getEmbeddingFor(input as Token[]);
  return unitLength(vector);
}

/** The vector scaled to length 1 (a zero vector stays as it is). */
export function unitLength(vector: readonly number[]): number[] {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? vector.map((x) => x / norm) : [...vector];
}
