/**
 * The text port: prompts to tokens and tokens back to text, per model. Implemented by
 * `engine/` (each model's vocabulary loaded alone in the server process) and by fakes in
 * tests. The runtime tokenizes and detokenizes through it; the API never does.
 */
import type { ModelId } from "./types.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "developer";
  content: string;
}

export interface ModelCodec {
  /** Completion prompt: BOS (when the model wants one) + text. */
  completionPrompt(text: string): number[];
  /** Chat prompt through the model's chat template (or a plain fallback), with an open assistant turn. */
  chatPrompt(messages: ChatMessage[]): { tokens: number[]; stopStrings: string[] };
  /** Text of `tokens`, given the tokens before them (a leading space depends on them). */
  detokenize(tokens: number[], lastTokens?: number[]): string;
}

export interface Codecs {
  get(modelId: ModelId): ModelCodec;
  dispose(): Promise<void>;
}
