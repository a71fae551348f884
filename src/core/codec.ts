/**
 * The text port: prompts to tokens and tokens back to text, per model. Implemented by
 * `engine/` (each model's vocabulary loaded alone; prompts tokenized on worker threads) and
 * by fakes in tests. The runtime tokenizes and detokenizes through it; the API never does.
 */
import type { ModelId } from "./types.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "developer";
  content: string;
}

/**
 * A value now or later: the prompt methods may run off the event loop (a worker pool), since
 * their work grows with the prompt; the caller awaits them either way.
 */
export type MaybeAsync<T> = T | Promise<T>;

export interface ModelCodec {
  /** Completion prompt: BOS (when the model wants one) + text. */
  completionPrompt(text: string): MaybeAsync<number[]>;
  /** Chat prompt through the model's chat template (or a plain fallback), with an open assistant turn. */
  chatPrompt(messages: ChatMessage[]): MaybeAsync<{ tokens: number[]; stopStrings: string[] }>;
  /** Text of `tokens`, given the tokens before them (a leading space depends on them). */
  detokenize(tokens: number[], lastTokens?: number[]): string;
}

export interface Codecs {
  get(modelId: ModelId): ModelCodec;
  dispose(): Promise<void>;
}
