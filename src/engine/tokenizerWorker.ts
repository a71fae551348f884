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

/**
 * Frees this thread's models before the pool terminates it: a thread terminated with
 * native models still loaded can abort the whole process as they are finalized. The
 * caller sends one of these per thread at once; each waits (`arrived`, shared) until every
 * thread has one, so no thread takes two and none is left out.
 */
export async function release({ arrived, threads }: { arrived: SharedArrayBuffer; threads: number }): Promise<void> {
  await tokenizers.dispose();
  const count = new Int32Array(arrived);
  Atomics.add(count, 0, 1);
  Atomics.notify(count, 0);
  // Bounded: a thread that never arrives (it died) must not hold the shutdown.
  const deadline = Date.now() + 5000;
  for (let n = Atomics.load(count, 0); n < threads && Date.now() < deadline; n = Atomics.load(count, 0)) Atomics.wait(count, 0, n, 100);
}

export default function tokenize(task: TokenizeTask): TokenizeAnswer {
  const codec = tokenizers.get(task.modelId) as unknown as Record<TokenizeTask["method"], (...args: unknown[]) => number[] | { tokens: number[] }>;
  const out = codec[task.method](...task.args);
  const { tokens, ...rest } = Array.isArray(out) ? { tokens: out } : out;
  return { tokens: Uint32Array.from(tokens), rest, threadId };
}
