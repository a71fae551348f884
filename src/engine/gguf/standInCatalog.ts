/**
 * The embedded default catalog: six stand-in models of three shapes (dense llama in Q8_0
 * and F16, and a llama-architecture Mixture-of-Experts), from ~6 MB to ~62 MB, and a small
 * llama-architecture embedding model (mean pooling, for /v1/embeddings). They have
 * random weights: real shapes and real compute cost, gibberish text. Pitcher writes them
 * on first start (engine/resolveModels.ts, with writeStandInModel); nothing is downloaded.
 */
import type { StandInModelShape } from "./writeStandInModel.ts";

const dense58m = { embeddingLength: 512, blockCount: 8, headCount: 8, headCountKv: 4, feedForwardLength: 1536, vocabularySize: 32000 };
const dense16m = { embeddingLength: 384, blockCount: 6, headCount: 6, headCountKv: 2, feedForwardLength: 1024, vocabularySize: 8000 };
const moe43m = { embeddingLength: 384, blockCount: 6, headCount: 6, headCountKv: 2, feedForwardLength: 512, vocabularySize: 16000, experts: { count: 8, used: 2 } };
const dense5m = { embeddingLength: 256, blockCount: 4, headCount: 4, headCountKv: 4, feedForwardLength: 768, vocabularySize: 4000 };

export interface StandInEntry {
  id: string;
  shape: StandInModelShape;
  description: string;
}

const ctx = { contextLength: 2048 };

export const STAND_IN_CATALOG: StandInEntry[] = [
  { id: "llama-58m-q8-a", shape: { name: "llama-58m-q8-a", ...dense58m, ...ctx, weightType: "q8_0", seed: 101 }, description: "dense llama, 58M parameters, Q8_0" },
  { id: "llama-58m-q8-b", shape: { name: "llama-58m-q8-b", ...dense58m, ...ctx, weightType: "q8_0", seed: 102 }, description: "dense llama, 58M parameters, Q8_0" },
  {
    id: "moe-43m-a12m-q8",
    shape: { name: "moe-43m-a12m-q8", ...moe43m, ...ctx, weightType: "q8_0", seed: 103 },
    description: "llama Mixture-of-Experts, 8 experts (2 active), 43M parameters, Q8_0",
  },
  { id: "llama-16m-f16", shape: { name: "llama-16m-f16", ...dense16m, ...ctx, weightType: "f16", seed: 104 }, description: "dense llama, 16M parameters, F16" },
  { id: "llama-5m-q8", shape: { name: "llama-5m-q8", ...dense5m, ...ctx, weightType: "q8_0", seed: 105 }, description: "dense llama, 5M parameters, Q8_0" },
  { id: "llama-5m-f16", shape: { name: "llama-5m-f16", ...dense5m, ...ctx, weightType: "f16", seed: 106 }, description: "dense llama, 5M parameters, F16" },
  // Last, so the six generating models keep their places (tests index them).
  {
    id: "embed-5m-f16",
    shape: { name: "embed-5m-f16", ...dense5m, ...ctx, weightType: "f16", pooling: "mean", seed: 107 },
    description: "llama-architecture embedding model (mean pooling, 256 dimensions), 5M parameters, F16",
  },
];
