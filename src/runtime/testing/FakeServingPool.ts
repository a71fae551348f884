/**
 * A pool for tests of the serving facade and the HTTP API: it records what it is asked to
 * generate and answers as the test scripts it, with no scheduler, device or model file.
 */
import type { Codecs } from "../../core/codec.ts";
import { PitcherError } from "../../core/errors.ts";
import type { ServedModel } from "../../core/servedModel.ts";
import { DEFAULT_SLO, type DeviceId, type ModelId } from "../../core/types.ts";
import type { GenerationParams, GenerationResult } from "../Pool.ts";
import type { ServingPool } from "../Serving.ts";

export function fakeModel(id: ModelId, contextTokens = 64, vocabularySize = 1000): ServedModel {
  return {
    id,
    path: `/models/${id}.gguf`,
    fingerprint: `fp-${id}`,
    fileBytes: 1_000_000,
    architecture: "llama",
    trainedContextTokens: contextTokens,
    vocabularySize,
    fileType: "Q8_0",
    standIn: true,
    description: `fake ${id}`,
    profile: {
      id,
      weightBytes: 1_000_000,
      kvBytesPerToken: 1000,
      contextTokens,
      maxBatch: 4,
      slo: DEFAULT_SLO,
      estimates: { decodeStepMs: 1, decodeExtraPerSequenceMs: 0, prefillMsPerToken: 0.1, loadMs: 10, unloadMs: 1, kvSwapMsPerToken: 0.01 },
    },
  };
}

/**
 * One token per character of a completion prompt, after a BOS token (1); a chat prompt is
 * `<role>: content` lines and an open assistant turn, and stops at `<|end|>`.
 */
export const fakeCodecs: Codecs = {
  get: () => ({
    completionPrompt: (text) => [1, ...[...text].map((c) => c.charCodeAt(0) % 1000)],
    chatPrompt: (messages) => {
      const text = messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant: ";
      return { tokens: [1, ...[...text].map((c) => c.charCodeAt(0) % 1000)], stopStrings: ["<|end|>"] };
    },
    detokenize: (tokens) => tokens.map((t) => String.fromCharCode(t)).join(""),
  }),
  dispose: async () => {},
};

export type Answer = (params: GenerationParams) => Promise<GenerationResult>;

/** Send `pieces` one per token (a macrotask apart, as a device's steps are), then end for `finishReason`. */
export function answerWith(pieces: string[], finishReason: "stop" | "length" = "length"): Answer {
  return async (params) => {
    for (const piece of pieces) {
      await new Promise((r) => setImmediate(r));
      if (params.signal?.aborted) throw new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error");
      params.onDelta?.(piece);
    }
    return { id: params.requestId, text: pieces.join(""), finishReason, promptTokens: params.promptTokens.length, completionTokens: pieces.length };
  };
}

/** Send `pieces`, then fail with `error`. */
export function failAfter(pieces: string[], error: Error): Answer {
  return async (params) => {
    await answerWith(pieces)(params);
    throw error;
  };
}

/** Never answer; end as cancelled when the caller aborts. */
export const untilAborted: Answer = (params) =>
  new Promise((_resolve, reject) => {
    const cancelled = () => reject(new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error"));
    // As the pool does: a signal that aborted before the request arrived cancels it at once.
    if (params.signal?.aborted) cancelled();
    else params.signal?.addEventListener("abort", cancelled, { once: true });
  });

export class FakeServingPool implements ServingPool {
  readonly models: Map<ModelId, ServedModel>;
  isDraining = false;
  activeRequests = 0;
  readonly calls: GenerationParams[] = [];
  answer: Answer = answerWith(["Hello", " world"]);
  devices: { id: DeviceId; down: boolean; residentModels: { modelId: ModelId }[] }[] = [
    { id: "dev0", down: false, residentModels: [{ modelId: "tiny" }] },
    { id: "dev1", down: true, residentModels: [] },
  ];

  constructor(models: ServedModel[] = [fakeModel("tiny")]) {
    this.models = new Map(models.map((m) => [m.id, m]));
  }

  generate(params: GenerationParams): Promise<GenerationResult> {
    this.calls.push(params);
    return this.answer(params);
  }

  snapshot() {
    return { devices: this.devices };
  }
}
