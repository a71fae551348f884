/**
 * Prompts are tokenized (and chat-templated) on a pool of worker threads (piscina), each
 * with the catalog's vocabularies loaded, so that a large prompt never stalls the event loop
 * that streams everyone else's tokens. Detokenizing, a few tokens at a time as they are
 * generated, stays on the main thread (`Tokenizers`), where it is cheap.
 */
import { threadId as mainThreadId } from "node:worker_threads";
import { Piscina } from "piscina";
import type { Codecs, ModelCodec } from "../core/codec.ts";
import type { ModelId } from "../core/types.ts";
import type { TokenizeAnswer, TokenizeTask } from "./tokenizerWorker.ts";
import type { ModelTokenizer, Tokenizers } from "./Tokenizers.ts";

const WORKER = new URL("./tokenizerWorker.boot.mjs", import.meta.url).href;

/** A codec whose prompt methods run on the pool; the rest is the main thread's tokenizer. */
export type PooledCodec = ModelCodec & {
  completionPrompt(...args: Parameters<ModelTokenizer["completionPrompt"]>): Promise<ReturnType<ModelTokenizer["completionPrompt"]>>;
  chatPrompt(...args: Parameters<ModelTokenizer["chatPrompt"]>): Promise<ReturnType<ModelTokenizer["chatPrompt"]>>;
};

export class TokenizerPool implements Codecs {
  private readonly pool: Piscina<TokenizeTask, TokenizeAnswer>;
  private readonly codecs = new Map<ModelId, PooledCodec>();
  private offThreadTasks = 0;
  private readonly firstModel: ModelId | undefined;

  /**
   * `threads` workers, started now; each loads every model's vocabulary before its first task.
   * `local` keeps serving detokenizing (and anything else the server asks synchronously).
   */
  constructor(
    private readonly local: Tokenizers,
    models: { id: ModelId; path: string }[],
    threads: number,
  ) {
    this.firstModel = models[0]?.id;
    this.pool = new Piscina<TokenizeTask, TokenizeAnswer>({
      filename: WORKER,
      workerData: { models: models.map((m) => ({ id: m.id, path: m.path })) },
      minThreads: threads,
      maxThreads: threads,
      // Workers hold loaded vocabularies: never let one go idle and reload later.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
  }

  /** Waits until every worker has loaded the vocabularies (one trivial task per thread, in parallel). */
  async ready(): Promise<void> {
    const first = this.firstModel;
    if (first === undefined) return;
    await Promise.all(Array.from({ length: this.pool.options.maxThreads }, () => this.run({ modelId: first, method: "completionPrompt", args: [""] })));
  }

  get(modelId: ModelId): PooledCodec {
    let codec = this.codecs.get(modelId);
    if (!codec) {
      const local = this.local.get(modelId);
      codec = {
        completionPrompt: async (...args) => (await this.run({ modelId, method: "completionPrompt", args })).tokens,
        chatPrompt: async (...args) => {
          const { tokens, rest } = await this.run({ modelId, method: "chatPrompt", args });
          return { ...(rest as Omit<ReturnType<ModelTokenizer["chatPrompt"]>, "tokens">), tokens } as ReturnType<ModelTokenizer["chatPrompt"]>;
        },
        detokenize: (tokens, lastTokens) => local.detokenize(tokens, lastTokens),
      };
      this.codecs.set(modelId, codec);
    }
    return codec;
  }

  /** Prompts tokenized on a worker thread so far (tests check the main thread did none). */
  get tasksOffThread(): number {
    return this.offThreadTasks;
  }

  private async run(task: TokenizeTask): Promise<{ tokens: number[]; rest: Record<string, unknown> }> {
    const answer = await this.pool.run(task);
    if (answer.threadId !== mainThreadId) this.offThreadTasks++;
    return { tokens: Array.from(answer.tokens), rest: answer.rest };
  }

  /** Stops the workers; the main thread's `Tokenizers` is its owner's to dispose. */
  async dispose(): Promise<void> {
    await this.pool.destroy();
  }
}
