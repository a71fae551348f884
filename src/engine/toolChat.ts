/**
 * Tools in chat prompts, through node-llama-cpp's chat wrappers: OpenAI messages (assistant
 * `tool_calls`, `tool` results) become the wrapper's chat history, the offered functions
 * are documented the wrapper's way (`availableFunctions`), and the wrapper's function-call
 * settings become a plain `ToolCallSyntax` the API parses output with.
 *
 * A wrapper whose settings are node-llama-cpp's generic default (a model without a chat
 * template, or a template that shows no tool syntax) gets Pitcher's fallback instead: the
 * functions described in a system message and calls written as a JSON list
 * `[{"name": …, "arguments": {…}}]`, which small models follow more readily.
 */
import {
  ChatModelFunctionsDocumentationGenerator,
  ChatWrapper,
  type ChatHistoryItem,
  type ChatModelFunctionCall,
  type ChatModelFunctions,
  type ChatModelSegment,
  type ChatWrapperSettings,
  LlamaText,
  type LlamaTextInputValue,
  SpecialToken,
  SpecialTokensText,
  type Tokenizer,
} from "node-llama-cpp";
import type { ChatMessage, ToolCallSyntax, ToolFunction } from "../core/codec.ts";

type FunctionSettings = ChatWrapperSettings["functions"];

/** Pitcher's fallback syntax: a JSON list of calls, then the results as a JSON list. */
const JSON_FUNCTIONS: FunctionSettings = {
  call: { optionalPrefixSpace: true, prefix: '{"name": "', paramsPrefix: '", "arguments": ', suffix: "}", emptyCallParamsPlaceholder: {} },
  result: { prefix: '{"name": "{{functionName}}", "result": ', suffix: "}" },
  parallelism: {
    call: { sectionPrefix: "[", betweenCalls: ", ", sectionSuffix: "]" },
    result: { sectionPrefix: "\nresults: [", betweenResults: ", ", sectionSuffix: "]\n" },
  },
};

/** True when the wrapper knows a tool-call syntax of its own (not node-llama-cpp's generic default). */
export function hasOwnToolSyntax(wrapper: ChatWrapper): boolean {
  const json = (f: FunctionSettings) => JSON.stringify({ call: LlamaText(f.call.prefix), params: LlamaText(f.call.paramsPrefix), suffix: LlamaText(f.call.suffix) });
  return json(wrapper.settings.functions) !== json(ChatWrapper.defaultSettings.functions);
}

/**
 * The wrapper to render tools with: `wrapper` itself when it has its own syntax, else a view
 * of it (same template, same instance state) with the JSON fallback's settings and system text.
 */
export function toolChatWrapper(wrapper: ChatWrapper): ChatWrapper {
  if (hasOwnToolSyntax(wrapper)) return wrapper;
  // A derived object, not a copy: every method still runs the model's own template code;
  // only `settings.functions` and the functions' description differ.
  const view = Object.create(wrapper) as ChatWrapper & { settings: ChatWrapperSettings };
  Object.defineProperty(view, "settings", { value: { ...wrapper.settings, functions: JSON_FUNCTIONS } });
  Object.defineProperty(view, "generateAvailableFunctionsSystemText", { value: jsonFallbackSystemText });
  return view;
}

function jsonFallbackSystemText(functions: ChatModelFunctions, { documentParams = true }: { documentParams?: boolean }): LlamaText {
  const docs = new ChatModelFunctionsDocumentationGenerator(functions);
  if (!docs.hasAnyFunctions) return LlamaText([]);
  return LlamaText.joinValues("\n", [
    "You can call these functions:",
    "```typescript",
    docs.getTypeScriptFunctionSignatures({ documentParams }),
    "```",
    "To call functions, answer with only a JSON list of calls, like this:",
    '[{"name": "getSomeInfo", "arguments": {"someKey": "someValue"}}]',
    "The results then follow the list; answer the user with them.",
  ]);
}

/** node-llama-cpp's view of the offered functions (their parameters' schemas as given). */
export function availableFunctions(functions: ToolFunction[]): ChatModelFunctions {
  return Object.fromEntries(functions.map((f) => [f.name, { ...(f.description ? { description: f.description } : {}), params: f.parameters as never }])) as ChatModelFunctions;
}

/**
 * OpenAI messages as a chat history ending in an open model turn. An assistant message's
 * calls and the tool messages answering them become function calls with results inside one
 * model turn (so the model continues after the results, as the templates expect); a
 * conversation that ends with tool results leaves that turn open for the answer.
 */
export function chatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  const results = new Map(messages.filter((m) => m.role === "tool" && m.toolCallId !== undefined).map((m) => [m.toolCallId!, m.content]));
  let open: (string | ChatModelFunctionCall | ChatModelSegment)[] | undefined; // the model turn that the next assistant text or call extends
  for (const m of messages) {
    if (m.role === "tool") continue; // rendered with its call
    if (m.role !== "assistant") {
      open = undefined;
      history.push(m.role === "user" ? { type: "user", text: m.content } : { type: "system", text: m.content });
      continue;
    }
    if (!open) {
      open = [];
      history.push({ type: "model", response: open });
    }
    if (m.content) open.push(m.content);
    (m.toolCalls ?? []).forEach((call, i) => {
      const fc: ChatModelFunctionCall = { type: "functionCall", name: call.name, params: parseJson(call.arguments), result: parseJson(results.get(call.id) ?? "") };
      open!.push(i === 0 ? { ...fc, startsNewChunk: true } : fc);
    });
    // Text after the calls starts a new model turn; calls continue this one with their results.
    if (!m.toolCalls?.length) open = undefined;
  }
  const last = history[history.length - 1];
  if (!(last?.type === "model" && open === last.response)) history.push({ type: "model", response: [] });
  return history;
}

/** A JSON text as its value (tool results and arguments usually are JSON), else the text itself. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The wrapper's call syntax as plain texts. Each text ends before the first part that is an
 * end-of-generation token (Qwen's `<|im_end|>`, Llama 3.1's `<|eom_id|>`, an EOS): a grammar
 * cannot spell those, and the generation ends there anyway.
 */
export function toolCallSyntax(wrapper: ChatWrapper, tokenizer: Tokenizer): ToolCallSyntax {
  const specialTexts = new Set<string>();
  const text = (value: LlamaTextInputValue | undefined): string => {
    let out = "";
    for (const v of LlamaText(value ?? "").values) {
      if (v instanceof SpecialToken) break;
      if (v instanceof SpecialTokensText) {
        if (v.tokenize(tokenizer).some((t) => tokenizer.isEogToken(t))) break;
        specialTexts.add(v.value);
        out += v.value;
      } else out += v;
    }
    return out;
  };
  const f = wrapper.settings.functions;
  const parallel = f.parallelism?.call;
  return {
    source: f === JSON_FUNCTIONS ? "json" : "native",
    callPrefix: text(f.call.prefix),
    paramsPrefix: text(f.call.paramsPrefix),
    callSuffix: text(f.call.suffix),
    ...(parallel ? { parallel: { sectionPrefix: text(parallel.sectionPrefix), betweenCalls: text(parallel.betweenCalls), sectionSuffix: text(parallel.sectionSuffix) } } : {}),
    specialTexts: [...specialTexts].filter((s) => s.length > 0),
  };
}
