/**
 * Model catalog for the simulator: parameters (total and active), weight format and the
 * attention shape that sets KV bytes per token. Presets cover ../shared/docs/simulator.md's
 * list and the models of the measured vLLM step profiles.
 */
export type WeightFormat = "bf16" | "fp16" | "fp8" | "int8" | "q8" | "q4";

export interface SimModelSpec {
  id: string;
  totalParams: number;
  activeParams: number;
  layers: number;
  hiddenSize: number;
  kvHeads: number;
  headDim: number;
  format: WeightFormat;
  /** Mixture-of-experts: experts per layer and experts used per token. */
  experts?: { count: number; used: number };
  /** Vision tokens per document page (OCR models such as DeepSeek-OCR). */
  visionTokensPerPage?: number;
}

export const BYTES_PER_PARAM: Record<WeightFormat, number> = { bf16: 2, fp16: 2, fp8: 1, int8: 1, q8: 1.0625, q4: 0.5625 };

export function weightBytes(m: SimModelSpec): number {
  return m.totalParams * BYTES_PER_PARAM[m.format];
}

/** KV cache bytes per token: K and V, every layer, 16-bit elements. */
export function kvBytesPerToken(m: SimModelSpec): number {
  return 2 * m.layers * m.kvHeads * m.headDim * 2;
}

const B = 1e9;
const dense = (id: string, params: number, layers: number, hidden: number, kvHeads: number, format: WeightFormat = "bf16", headDim = 128): SimModelSpec => ({
  id,
  totalParams: params * B,
  activeParams: params * B,
  layers,
  hiddenSize: hidden,
  kvHeads,
  headDim,
  format,
});

export const MODEL_PRESETS: SimModelSpec[] = [
  dense("qwen2.5-7b", 7.6, 28, 3584, 4),
  dense("qwen2.5-14b", 14.7, 48, 5120, 8),
  dense("qwen2.5-72b", 72.7, 80, 8192, 8),
  // simulator.md's H20 batch-1 decode figure is for this model.
  dense("qwen3-8b", 8.2, 36, 4096, 8),
  dense("llama-2-7b", 6.74, 32, 4096, 32),
  dense("llama-2-13b", 13.0, 40, 5120, 40),
  dense("yi-1.5-6b", 6.06, 32, 4096, 4),
  dense("yi-1.5-9b", 8.83, 48, 4096, 4),
  dense("qwen-7b", 7.7, 32, 4096, 32),
  dense("qwen-14b", 14.2, 40, 5120, 40),
  dense("qwen1.5-14b", 14.2, 40, 5120, 40),
  dense("internlm2.5-7b", 7.7, 32, 4096, 8),
  dense("baichuan-7b", 7.0, 32, 4096, 32),
  dense("baichuan2-13b", 13.9, 40, 5120, 40),
  dense("llava-1.5-13b", 13.35, 40, 5120, 40),
  {
    id: "qwen1.5-moe-a2.7b",
    totalParams: 14.3 * B,
    activeParams: 2.7 * B,
    layers: 24,
    hiddenSize: 2048,
    kvHeads: 16,
    headDim: 128,
    format: "bf16",
    experts: { count: 60, used: 4 },
  },
  { id: "qwen3-30b-a3b", totalParams: 30.5 * B, activeParams: 3.3 * B, layers: 48, hiddenSize: 2048, kvHeads: 4, headDim: 128, format: "bf16", experts: { count: 128, used: 8 } },
  { id: "ernie-4.5-21b-a3b", totalParams: 21 * B, activeParams: 3 * B, layers: 28, hiddenSize: 2560, kvHeads: 4, headDim: 128, format: "bf16", experts: { count: 64, used: 6 } },
  {
    id: "deepseek-ocr",
    totalParams: 3.38 * B,
    activeParams: 0.57 * B,
    layers: 12,
    hiddenSize: 1280,
    kvHeads: 10,
    headDim: 128,
    format: "bf16",
    experts: { count: 64, used: 6 },
    visionTokensPerPage: 100,
  },
];

export function findModelPreset(id: string): SimModelSpec | undefined {
  return MODEL_PRESETS.find((m) => m.id === id);
}

/** The profile CSV's model names, mapped to presets. */
export const PROFILE_MODEL_NAMES: Record<string, string> = {
  qwen2_5_7b: "qwen2.5-7b",
  llama2_7b: "llama-2-7b",
  llama2_13b_chat: "llama-2-13b",
  yi1_5_6b_chat: "yi-1.5-6b",
  yi1_5_9b_chat: "yi-1.5-9b",
  qwen_7b: "qwen-7b",
  qwen_7b_chat: "qwen-7b",
  qwen_14b_chat: "qwen-14b",
  qwen1_5_14b_chat: "qwen1.5-14b",
  internlm2_5_7b_chat: "internlm2.5-7b",
  baichuan_7b: "baichuan-7b",
  baichuan2_13b_chat: "baichuan2-13b",
  llava1_5_13b: "llava-1.5-13b",
  qwen1_5_moe_a2_7b_chat: "qwen1.5-moe-a2.7b",
};
