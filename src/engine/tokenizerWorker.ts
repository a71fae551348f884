/**
 * One thread of the tokenizer pool (`tokenizerPool.ts`): it loads every catalog model's
 * vocabulary (`vocabOnly`, no weights) once, then turns prompts into tokens, chat
 * templating included, so that work proportional to a prompt's size never runs on the
 * server's event loop.
 */
import { threadId, workerData } from "node:worker_threads";
import type { ModelId } from "../core/types.ts";
import { Tokenizers } from "./Tokenizers.ts";

/** What a task asks: one of `ModelTokenizer`'s prompt methods, with its arguments as given. */
export interface TokenizeTask {
  modelId: ModelId;
  method: "completionPrompt" | "chatPrompt";
  args: unknown[];
}

/** The method's answer, its tokens as a typed array (cloned as one block, not element by element), and where it ran. */
export interface TokenizeAnswer {
  tokens: Uint32Array;
  rest: Record<string, unknown>;
  threadId: number;
}

const { models } = workerData as { models: { id: ModelId; path: string }[] };
const tokenizers = await Tokenizers.load(models);

export default function tokenize(task: TokenizeTask): TokenizeAnswer {
  const codec = tokenizers.get(task.modelId) as unknown as Record<TokenizeTask["method"], (...args: unknown[]) => number[] | { tokens: number[] }>;
  const out = codec[task.method](...task.args);
  const { tokens, ...rest } = Array.isArray(out) ? { tokens: out } : out;
  return { tokens: Uint32Array.from(tokens), rest, threadId };
}
