/**
 * Tokenization in the server process: every catalog model's vocabulary is loaded alone
 * (`vocabOnly`, no weights), so prompts are measured and validated before they are
 * scheduled, and output tokens become text without asking a device.
 */
import { GeneralChatWrapper, getLlama, LlamaLogLevel, resolveChatWrapper, type ChatWrapper, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import type { ChatMessage, ChatToolsPrompt, ChatToolsRequest, Codecs, ModelCodec } from "../core/codec.ts";
import type { ModelId } from "../core/types.ts";
import { availableFunctions, chatHistory, toolCallSyntax, toolChatWrapper } from "./toolChat.ts";
import { toolCallGrammar } from "./toolGrammar.ts";

export class ModelTokenizer implements ModelCodec {
  readonly endTokens: ReadonlySet<number>;
  readonly stopStrings: string[];

  /** The wrapper that renders tools: the chat wrapper itself, or it with the JSON fallback syntax. */
  private readonly toolWrapper: ChatWrapper;

  constructor(
    private readonly model: LlamaModel,
    readonly chatWrapper: ChatWrapper,
    private readonly llama?: Llama,
  ) {
    this.toolWrapper = toolChatWrapper(chatWrapper);
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

  /** Chat prompt through the model's chat template (or a plain fallback) with an open assistant turn; with tools, see `ModelCodec`. */
  chatPrompt(messages: ChatMessage[], tools?: ChatToolsRequest): { tokens: number[]; stopStrings: string[]; tools?: ChatToolsPrompt } {
    const withTools = tools !== undefined || messages.some((m) => m.role === "tool" || (m.toolCalls?.length ?? 0) > 0);
    const wrapper = withTools ? this.toolWrapper : this.chatWrapper;
    const state = wrapper.generateContextState({
      chatHistory: chatHistory(messages),
      ...(tools ? { availableFunctions: availableFunctions(tools.functions) } : {}),
    });
    const tokens = state.contextText.tokenize(this.model.tokenizer) as number[];
    const stopStrings: string[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const s = trigger.values.every((v) => typeof v === "string") ? trigger.values.join("") : "";
      if (s) stopStrings.push(s);
    }
    if (!tools) return { tokens, stopStrings };
    if (!this.llama) throw new Error("tool calling needs the tokenizer's llama instance");
    const syntax = toolCallSyntax(wrapper, this.model.tokenizer);
    return { tokens, stopStrings, tools: { syntax, grammar: { kind: "gbnf", text: toolCallGrammar(this.llama, syntax, tools) } } };
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
      byModel.set(m.id, new ModelTokenizer(model, wrapper, llama));
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
