/**
 * The text port: prompts to tokens and tokens back to text, per model. Implemented by
 * `engine/` (each model's vocabulary loaded alone; prompts tokenized on worker threads) and
 * by fakes in tests. The runtime tokenizes and detokenizes through it; the API never does.
 */
import type { OutputGrammar } from "./devicePort.ts";
import type { ModelId } from "./types.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "developer" | "tool";
  content: string;
  /** An assistant message: the tool calls it made (its `content` may be empty). */
  toolCalls?: ToolCall[];
  /** A tool message: the id of the call whose result `content` is. */
  toolCallId?: string;
}

/** A call the model made: `arguments` is JSON text, as in the OpenAI API. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A function offered to the model; `parameters` is its arguments' JSON schema (an object schema), as the client sent it. */
export interface ToolFunction {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
  /** The schema the arguments' grammar enforces (node-llama-cpp's subset, as the API rewrote it); `parameters` when absent. */
  argumentsSchema?: Record<string, unknown>;
}

/**
 * What a chat request asks of tools. `choice`: `auto` (text or calls), `required` (calls
 * only), or one function by name (a call of it only). `tool_choice: "none"` offers no tools
 * and so never gets here. `parallel`: several calls in one turn are allowed.
 */
export interface ChatToolsRequest {
  functions: ToolFunction[];
  choice: "auto" | "required" | { name: string };
  parallel: boolean;
}

/**
 * How a model writes tool calls, as literal texts around the function's name and its JSON
 * arguments: `callPrefix name paramsPrefix {json} callSuffix`, several of them between
 * `parallel`'s section prefix and suffix, separated by `betweenCalls`. `{{functionName}}` in
 * `paramsPrefix` and `callSuffix` stands for the name. Texts end where the model's
 * end-of-turn token would come (the generation stops there).
 */
export interface ToolCallSyntax {
  /** `native`: the chat template's own syntax; `json`: Pitcher's fallback (a JSON list of `{"name", "arguments"}`). */
  source: "native" | "json";
  callPrefix: string;
  paramsPrefix: string;
  callSuffix: string;
  parallel?: { sectionPrefix: string; betweenCalls: string; sectionSuffix: string };
  /** Substrings of the texts above that are special tokens: output text shows them as nothing. */
  specialTexts: string[];
}

/** The tool side of a chat prompt: the call syntax (to parse the output) and the output's grammar. */
export interface ChatToolsPrompt {
  syntax: ToolCallSyntax;
  grammar: OutputGrammar;
}

/**
 * A value now or later: the prompt methods may run off the event loop (a worker pool), since
 * their work grows with the prompt; the caller awaits them either way.
 */
export type MaybeAsync<T> = T | Promise<T>;

export interface ModelCodec {
  /** Completion prompt: BOS (when the model wants one) + text. */
  completionPrompt(text: string): MaybeAsync<number[]>;
  /**
   * Chat prompt through the model's chat template (or a plain fallback), with an open
   * assistant turn. With `tools`, the functions are offered in the model's own way and
   * `tools` in the answer says how calls are written and constrains the output to them.
   */
  chatPrompt(messages: ChatMessage[], tools?: ChatToolsRequest): MaybeAsync<{ tokens: number[]; stopStrings: string[]; tools?: ChatToolsPrompt }>;
  /** Text of `tokens`, given the tokens before them (a leading space depends on them). */
  detokenize(tokens: number[], lastTokens?: number[]): string;
}

export interface Codecs {
  get(modelId: ModelId): ModelCodec;
  dispose(): Promise<void>;
}
