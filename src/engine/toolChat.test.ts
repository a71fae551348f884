/**
 * Tools in chat prompts and the tool-call grammar, on real tokenizers and llama.cpp's own
 * grammar engine: the grammar is sampled here in-process with node-llama-cpp's
 * `LlamaCompletion` (the device worker enforces the same text), and what it lets the tiny
 * real model write must parse as calls whose arguments validate against their schemas.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Ajv } from "ajv";
import {
  type ChatWrapper,
  GeneralChatWrapper,
  getLlama,
  type Llama,
  LlamaCompletion,
  LlamaLogLevel,
  type LlamaModel,
  Llama3_1ChatWrapper,
  MistralChatWrapper,
  QwenChatWrapper,
} from "node-llama-cpp";
import { parseToolCalls } from "../api/toolCalls.ts";
import type { ChatMessage, ChatToolsRequest, ToolFunction } from "../core/codec.ts";
import { ModelTokenizer } from "./Tokenizers.ts";
import { literal, notStartingWith, renameRules } from "./toolGrammar.ts";

const STORIES = new URL("../../../shared/models/stories260K.gguf", import.meta.url).pathname;

const weather: ToolFunction = {
  name: "get_weather",
  description: "Weather of a city",
  parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] }, days: { type: "integer" } }, required: ["city"] },
};
const search: ToolFunction = {
  name: "search",
  parameters: { type: "object", properties: { query: { type: "string", maxLength: 12 }, tags: { type: "array", items: { type: "string", maxLength: 5 }, maxItems: 2 } } },
};
const now: ToolFunction = { name: "now", parameters: { type: "object", properties: {} } };
const FUNCTIONS = [weather, search, now];

const conversation: ChatMessage[] = [
  { role: "user", content: "Weather in Paris?" },
  { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
  { role: "tool", content: '{"temp":20}', toolCallId: "call_1" },
];

describe("tools in chat prompts and their grammar", () => {
  let llama: Llama;
  let model: LlamaModel;
  before(async () => {
    llama = await getLlama({ build: "never", gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
    model = await llama.loadModel({ modelPath: STORIES });
  });
  after(async () => {
    await model.dispose();
    await llama.dispose();
  });

  const tokenizer = (wrapper: ChatWrapper = new GeneralChatWrapper()) => new ModelTokenizer(model, wrapper, llama);
  const detok = (t: ModelTokenizer, tokens: number[]) => t.detokenize(tokens);

  it("a model without a tool syntax of its own gets the JSON fallback: functions described, calls and results as JSON lists", () => {
    const t = tokenizer();
    const r = t.chatPrompt(conversation, { functions: FUNCTIONS, choice: "auto", parallel: true });
    assert.equal(r.tools?.syntax.source, "json");
    const text = detok(t, r.tokens);
    assert.match(text, /function get_weather\(params: \{\s*\/\/ maximum length: 12\s*city: string/);
    assert.match(text, /\[\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\]\nresults: \[\{"name": "get_weather", "result": \{"temp": 20\}\}\]\n$/);
  });

  it("a wrapper with its own syntax renders calls and results its way (Qwen, Llama 3.1, Mistral)", () => {
    const expected: [InstanceType<typeof QwenChatWrapper | typeof Llama3_1ChatWrapper | typeof MistralChatWrapper>, RegExp][] = [
      [new QwenChatWrapper(), /<tool_call>\s*\n\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\n\s*<\/tool_call>/],
      [new Llama3_1ChatWrapper(), /<function=get_weather\s*>\{"city": "Paris"\}\s*<\/function>/],
      [new MistralChatWrapper(), /\[TOOL_CALLS\]\s*\[\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\]/],
    ];
    for (const [wrapper, call] of expected) {
      const t = tokenizer(wrapper);
      const r = t.chatPrompt(conversation, { functions: FUNCTIONS, choice: "auto", parallel: true });
      assert.equal(r.tools?.syntax.source, "native", wrapper.wrapperName);
      assert.match(detok(t, r.tokens), call, wrapper.wrapperName);
    }
  });

  it("tool calls in the history render without tools offered (tool_choice none)", () => {
    const t = tokenizer();
    const r = t.chatPrompt(conversation);
    assert.equal(r.tools, undefined);
    assert.match(detok(t, r.tokens), /"result": \{"temp": 20\}/);
    assert.doesNotMatch(detok(t, r.tokens), /You can call these functions/);
  });

  it("renames GBNF rules outside literals and classes; escapes literals; 'not starting with' compiles", async () => {
    assert.equal(renameRules('root ::= "a-b" [a-z] rule0 string-rule{2}', "f0-"), 'f0-root ::= "a-b" [a-z] f0-rule0 f0-string-rule{2}');
    assert.equal(literal('a"\\\n'), '"a\\"\\\\\\x0a"');
    const g = await llama.createGrammar({ grammar: ["root ::= text", ...notStartingWith("text", "<tc>")].join("\n") });
    assert.equal(g.grammar.includes("text-any"), true);
  });

  for (const [label, wrapper] of [
    ["JSON fallback", () => new GeneralChatWrapper()],
    ["Qwen syntax", () => new QwenChatWrapper()],
    ["Llama 3.1 syntax", () => new Llama3_1ChatWrapper()],
  ] as const) {
    for (const choice of ["required", { name: "search" }] as ChatToolsRequest["choice"][]) {
      it(`${label}, tool_choice ${JSON.stringify(choice)}: what the grammar lets a real model write parses as valid calls`, async () => {
        const t = tokenizer(wrapper());
        const request: ChatToolsRequest = { functions: FUNCTIONS, choice, parallel: true };
        const r = t.chatPrompt([{ role: "user", content: "Once upon a time" }], request);
        assert.ok(r.tools);
        const grammar = await llama.createGrammar({ grammar: (r.tools.grammar as { text: string }).text });
        const context = await model.createContext({ contextSize: 2048 });
        try {
          const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
          const ajv = new Ajv();
          for (const seed of [1, 2, 3]) {
            const text = await completion.generateCompletion("Once upon a time", { grammar, maxTokens: 1500, temperature: 1, seed });
            const calls = parseToolCalls(
              text,
              r.tools.syntax,
              FUNCTIONS.map((f) => f.name),
            );
            assert.ok(calls, `seed ${seed}: not calls: ${JSON.stringify(text)}`);
            for (const call of calls) {
              if (typeof choice === "object") assert.equal(call.name, choice.name);
              const f = FUNCTIONS.find((x) => x.name === call.name)!;
              assert.ok(ajv.validate(f.parameters, JSON.parse(call.arguments)), `${call.arguments}: ${ajv.errorsText()}`);
            }
          }
        } finally {
          await context.dispose();
        }
      });
    }
  }

  it("tool_choice auto: text that does not start like a call, or valid calls", async () => {
    const t = tokenizer();
    const r = t.chatPrompt([{ role: "user", content: "Hi" }], { functions: FUNCTIONS, choice: "auto", parallel: false });
    assert.ok(r.tools);
    const grammar = await llama.createGrammar({ grammar: (r.tools.grammar as { text: string }).text });
    const context = await model.createContext({ contextSize: 1024 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      for (const seed of [1, 2]) {
        const text = await completion.generateCompletion("Once upon a time", { grammar, maxTokens: 60, temperature: 1, seed });
        const calls = parseToolCalls(
          text,
          r.tools.syntax,
          FUNCTIONS.map((f) => f.name),
        );
        if (!calls) assert.ok(!text.startsWith('[{"name": "'), text);
      }
    } finally {
      await context.dispose();
    }
  });
});
