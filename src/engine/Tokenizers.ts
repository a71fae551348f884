/**
 * Tokenization in the server process: every catalog model's vocabulary is loaded alone
 * (`vocabOnly`, no weights), so prompts are measured and validated before they are
 * scheduled, and output tokens become text without asking a device.
 */
import { GeneralChatWrapper, getLlama, LlamaLogLevel, resolveChatWrapper, type ChatHistoryItem, type ChatWrapper, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import type { ChatMessage, Codecs, ModelCodec } from "../core/codec.ts";
import type { ModelId } from "../core/types.ts";

export class ModelTokenizer implements ModelCodec {
  readonly endTokens: ReadonlySet<number>;
  readonly stopStrings: string[];

  constructor(
    private readonly model: LlamaModel,
    readonly chatWrapper: ChatWrapper,
  ) {
    const ends = new Set<number>();
    for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null && t !== undefined) ends.add(t);
    this.endTokens = ends;
    this.stopStrings = [];
  }

  get hasChatTemplate(): boolean {
    return !(this.chatWrapper instanceof GeneralChatWrapper);
  }

  tokenize(text: string): number[] {
    return this.model.tokenize(text, false) as number[];
  }

  /** Completion prompt: BOS (when the model wants one) + text. */
  completionPrompt(text: string): number[] {
    const tokens = this.model.tokenize(text, false) as number[];
    const bos = this.model.tokens.bos;
    return bos !== null && bos !== undefined && this.model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
  }

  /** Chat prompt through the model's chat template (or a plain fallback) with an open assistant turn. */
  chatPrompt(messages: ChatMessage[]): { tokens: number[]; stopStrings: string[] } {
    const history: ChatHistoryItem[] = messages.map((m) =>
      m.role === "assistant" ? { type: "model", response: [m.content] } : m.role === "user" ? { type: "user", text: m.content } : { type: "system", text: m.content },
    );
    history.push({ type: "model", response: [] });
    const state = this.chatWrapper.generateContextState({ chatHistory: history });
    const tokens = state.contextText.tokenize(this.model.tokenizer) as number[];
    const stopStrings: string[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const s = trigger.values.every((v) => typeof v === "string") ? trigger.values.join("") : "";
      if (s) stopStrings.push(s);
    }
    return { tokens, stopStrings };
  }

  detokenize(tokens: number[], lastTokens?: number[]): string {
    return this.model.detokenize(tokens as Token[], false, lastTokens as Token[] | undefined);
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}

export class Tokenizers implements Codecs {
  private constructor(
    private readonly llama: Llama,
    private readonly byModel: Map<ModelId, ModelTokenizer>,
  ) {}

  static async load(models: { id: ModelId; path: string }[]): Promise<Tokenizers> {
    const llama = await getLlama({ build: "never", gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
    const byModel = new Map<ModelId, ModelTokenizer>();
    for (const m of models) {
      const model = await llama.loadModel({ modelPath: m.path, vocabOnly: true });
      let wrapper: ChatWrapper;
      try {
        wrapper = resolveChatWrapper(model, { fallbackToOtherWrappersOnJinjaError: true }) ?? new GeneralChatWrapper();
      } catch {
        wrapper = new GeneralChatWrapper();
      }
      byModel.set(m.id, new ModelTokenizer(model, wrapper));
    }
    return new Tokenizers(llama, byModel);
  }

  get(modelId: ModelId): ModelTokenizer {
    const t = this.byModel.get(modelId);
    if (!t) throw new Error(`no tokenizer for ${modelId}`);
    return t;
  }

  async dispose(): Promise<void> {
    for (const t of this.byModel.values()) await t.dispose();
    await this.llama.dispose();
  }
}
