/** A served model for tests, with a profile that fits the fake device's costs. */
import type { ServedModel } from "../../src/core/servedModel.ts";
import { DEFAULT_SLO, type ModelProfile } from "../../src/core/types.ts";

export function servedModel(id: string, profile: Partial<Omit<ModelProfile, "id">> = {}, file: Partial<ServedModel> = {}): ServedModel {
  return {
    id,
    path: `/nonexistent/${id}.gguf`,
    fingerprint: id,
    fileBytes: 60e6,
    architecture: "llama",
    trainedContextTokens: 512,
    vocabularySize: 1000,
    standIn: true,
    description: `test model ${id}`,
    ...file,
    profile: {
      id,
      weightBytes: 60e6,
      kvBytesPerToken: 10_000,
      contextTokens: 512,
      maxBatch: 4,
      slo: DEFAULT_SLO,
      estimates: { decodeStepMs: 10, decodeExtraPerSequenceMs: 1, prefillMsPerToken: 1, loadMs: 100, unloadMs: 5, kvSwapMsPerToken: 0.01 },
      ...profile,
    },
  };
}
