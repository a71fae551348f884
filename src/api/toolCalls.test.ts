// Tool calling on the wire, in-process: request checks, parsing each syntax, and the reply
// and stream shapes, over the real serving facade on a fake pool whose codec offers tools in
// the JSON fallback syntax. Grammar enforcement is tested in src/engine/toolChat.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatMessage, ChatToolsRequest, Codecs, ToolCallSyntax } from "../core/codec.ts";
import { answerWith, fakeCodecs } from "../runtime/testing/FakeServingPool.ts";
import { assertOpenAiError, events, setup } from "./testing/testApp.ts";
import { parseToolCalls, ToolCallStream } from "./toolCalls.ts";

const JSON_SYNTAX: ToolCallSyntax = {
  source: "json",
  callPrefix: '{"name": "',
  paramsPrefix: '", "arguments": ',
  callSuffix: "}",
  parallel: { sectionPrefix: "[", betweenCalls: ", ", sectionSuffix: "]" },
  specialTexts: [],
};
const QWEN: ToolCallSyntax = {
  source: "native",
  callPrefix: '<tool_call>\n{"name": "',
  paramsPrefix: '", "arguments": ',
  callSuffix: "}\n</tool_call>",
  parallel: { sectionPrefix: "", betweenCalls: "\n", sectionSuffix: "" },
  specialTexts: ["<tool_call>", "</tool_call>"],
};
const LLAMA31: ToolCallSyntax = { source: "native", callPrefix: "<function=", paramsPrefix: ">", callSuffix: "</function>", specialTexts: ["<function=", ">", "</function>"] };
const FUNCTIONARY: ToolCallSyntax = {
  source: "native",
  callPrefix: ">>>",
  paramsPrefix: "\n",
  callSuffix: "",
  parallel: { sectionPrefix: "", betweenCalls: "", sectionSuffix: "" },
  specialTexts: [">>>", "\n"],
};
const NAMES = ["get_weather", "get", "now"];

describe("parsing calls written in a model's syntax", () => {
  it("the JSON fallback: one call, several, and text that is not calls", () => {
    assert.deepEqual(parseToolCalls('[{"name": "get_weather", "arguments": {"city": "Paris"}}]', JSON_SYNTAX, NAMES), [{ name: "get_weather", arguments: '{"city":"Paris"}' }]);
    assert.deepEqual(parseToolCalls('[{"name": "get", "arguments": {}}, {"name": "now", "arguments": {"a": [1, "}"]}}]', JSON_SYNTAX, NAMES), [
      { name: "get", arguments: "{}" },
      { name: "now", arguments: '{"a":[1,"}"]}' },
    ]);
    for (const text of ["Hello", '[{"name": "nope", "arguments": {}}]', '[{"name": "get", "arguments": {"a": 1', '[{"name": "get", "arguments": {}}] and more', ""])
      assert.equal(parseToolCalls(text, JSON_SYNTAX, NAMES), undefined, text);
  });

  it("native syntaxes, with their special tokens shown or not", () => {
    const qwen = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>';
    const expected = [
      { name: "get_weather", arguments: '{"city":"Oslo"}' },
      { name: "now", arguments: "{}" },
    ];
    assert.deepEqual(parseToolCalls(qwen, QWEN, NAMES), expected);
    assert.deepEqual(parseToolCalls(qwen.replaceAll("<tool_call>", "").replaceAll("</tool_call>", ""), QWEN, NAMES), expected);
    assert.deepEqual(parseToolCalls('<function=get_weather>{"city": "Oslo"}</function>', LLAMA31, NAMES), [expected[0]]);
    assert.deepEqual(parseToolCalls('get_weather{"city": "Oslo"}', LLAMA31, NAMES), [expected[0]], "all special tokens dropped");
    assert.deepEqual(parseToolCalls('>>>get_weather\n{"city": "Oslo"}>>>now\n{}', FUNCTIONARY, NAMES), expected, "no separator between calls");
  });

  it("a stream holds back what may start a call, passes text on, and sends calls whole at the end", () => {
    const text = new ToolCallStream(JSON_SYNTAX, NAMES);
    assert.deepEqual(text.push("[1"), [{ content: "[1" }]);
    assert.deepEqual(text.push(", 2]"), [{ content: ", 2]" }]);
    assert.deepEqual(text.end("stop"), { deltas: [], finishReason: "stop" });

    const call = new ToolCallStream(JSON_SYNTAX, NAMES);
    for (const piece of ["[", '{"na', 'me": "now", "argu', 'ments": {}}]']) assert.deepEqual(call.push(piece), []);
    const end = call.end("stop");
    assert.equal(end.finishReason, "tool_calls");
    const [first, args] = end.deltas as any[];
    assert.match(first.tool_calls[0].id, /^call_[0-9a-f]{24}$/);
    assert.deepEqual({ ...first.tool_calls[0], id: "x" }, { index: 0, id: "x", type: "function", function: { name: "now", arguments: "" } });
    assert.deepEqual(args, { tool_calls: [{ index: 0, function: { arguments: "{}" } }] });

    const llama = new ToolCallStream(LLAMA31, NAMES);
    assert.deepEqual(llama.push("ge"), [], "may be a name after a prefix of special tokens");
    assert.deepEqual(llama.push("nerous"), [{ content: "generous" }]);

    const cut = new ToolCallStream(JSON_SYNTAX, NAMES);
    cut.push('[{"name": "now", "arguments": {');
    assert.deepEqual(cut.end("length"), { deltas: [{ content: '[{"name": "now", "arguments": {' }], finishReason: "length" });
  });
});

/** The fake codecs, offering tools in the JSON fallback syntax; the last tools request is kept. */
function toolCodecs(): Codecs & { last?: { messages: ChatMessage[]; tools: ChatToolsRequest | undefined } } {
  const codecs: Codecs & { last?: { messages: ChatMessage[]; tools: ChatToolsRequest | undefined } } = {
    get: (id) => {
      const base = fakeCodecs.get(id);
      return {
        ...base,
        chatPrompt: (messages, tools) => {
          codecs.last = { messages, tools };
          const prompt = base.chatPrompt(messages);
          return tools ? { ...prompt, tools: { syntax: JSON_SYNTAX, grammar: { kind: "gbnf", text: "root ::= calls" } } } : prompt;
        },
      };
    },
    dispose: async () => {},
  };
  return codecs;
}

const weather = { type: "function", function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };
const ask = [{ role: "user", content: "Weather in Paris?" }];

describe("tool calling over the API", () => {
  const codecs = toolCodecs();
  const { pool, post } = setup(undefined, {}, codecs);

  it("a reply that is calls: message.tool_calls, content null, finish_reason tool_calls; the grammar goes to the pool", async () => {
    pool.answer = answerWith(['[{"name": "get_weather", ', '"arguments": {"city": "Paris"}}]'], "stop");
    const r = await post("/v1/chat/completions", { model: "tiny", messages: ask, tools: [weather], tool_choice: "required", parallel_tool_calls: false });
    assert.equal(r.status, 200, r.body);
    const choice = r.json.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    assert.match(choice.message.tool_calls[0].id, /^call_/);
    assert.deepEqual(choice.message.tool_calls[0].function, { name: "get_weather", arguments: '{"city":"Paris"}' });
    const offered = codecs.last?.tools;
    assert.deepEqual({ ...offered, functions: undefined }, { functions: undefined, choice: "required", parallel: false });
    assert.deepEqual(
      offered?.functions.map((f) => [f.name, f.description, f.parameters]),
      [["get_weather", "Weather", weather.function.parameters]],
    );
    assert.ok(offered?.functions[0]?.argumentsSchema, "the schema in the grammar's subset");
    assert.deepEqual(pool.calls.at(-1)?.sampling.grammar, { kind: "gbnf", text: "root ::= calls" });
  });

  it("a named tool_choice reaches the codec by name; auto text stays content", async () => {
    pool.answer = answerWith(["Sunny", "."], "stop");
    const r = await post("/v1/chat/completions", { model: "tiny", messages: ask, tools: [weather], tool_choice: { type: "function", function: { name: "get_weather" } } });
    assert.deepEqual(codecs.last?.tools?.choice, { name: "get_weather" });
    assert.deepEqual(r.json.choices[0].message, { role: "assistant", content: "Sunny." });
    assert.equal(r.json.choices[0].finish_reason, "stop");
  });

  it("streamed calls arrive as tool_calls deltas the openai client assembles", async () => {
    pool.answer = answerWith(["[", '{"name": "get_weather", "arguments": ', '{"city": "Paris"}}]'], "stop");
    const r = await post("/v1/chat/completions", { model: "tiny", messages: ask, tools: [weather], stream: true });
    const chunks = events(r.body)
      .filter((e) => e !== "[DONE]")
      .map((e) => JSON.parse(e));
    const deltas = chunks.map((c) => c.choices[0]?.delta);
    assert.ok(!deltas.some((d) => d?.content), "no text deltas");
    const calls = deltas.filter((d) => d?.tool_calls).flatMap((d) => d.tool_calls);
    assert.deepEqual(calls[0].function, { name: "get_weather", arguments: "" });
    assert.equal(calls.map((c) => c.function.arguments).join(""), '{"city":"Paris"}');
    assert.equal(chunks.at(-1).choices[0].finish_reason, "tool_calls");
  });

  it("tool_choice none offers no tools; the history's calls and results still reach the prompt", async () => {
    pool.answer = answerWith(["It is 20 degrees."], "stop");
    const messages = [
      ...ask,
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp": 20}' },
    ];
    const r = await post("/v1/chat/completions", { model: "tiny", messages, tools: [weather], tool_choice: "none" });
    assert.equal(r.status, 200, r.body);
    assert.equal(codecs.last?.tools, undefined);
    assert.equal(pool.calls.at(-1)?.sampling.grammar, undefined);
    assert.deepEqual(codecs.last?.messages.slice(1), [
      { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
      { role: "tool", content: '{"temp": 20}', toolCallId: "call_1" },
    ]);
  });

  it("bad tool requests are 400 and name the field", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ messages: [...ask, { role: "tool", tool_call_id: "call_9", content: "x" }] }, "invalid_request", "messages.1.tool_call_id"],
      [{ messages: [...ask, { role: "tool", content: "x" }] }, "invalid_request", "messages.1.tool_call_id"],
      [
        { messages: [...ask, { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: "{}" } }] }] },
        "invalid_request",
        "messages.1.tool_calls",
      ],
      [{ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }, "invalid_request", "tool_choice"],
      [{ tool_choice: "required" }, "invalid_request", "tool_choice"],
      [{ tools: [weather, weather] }, "invalid_request", "tools.1.function.name"],
      [{ tools: [{ type: "function", function: { name: "bad name" } }] }, "invalid_request", "tools.0.function.name"],
      [{ tools: [{ type: "function", function: { name: "f", parameters: { type: "string" } } }] }, "invalid_request", "tools.0.function.parameters"],
      [
        { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string", pattern: "^x" } } } } }] },
        "unsupported_schema_keyword",
        "tools.0.function.parameters.properties.a.pattern",
      ],
      [{ tools: [weather], logprobs: true }, "unsupported_option", "logprobs"],
      [{ functions: [{ name: "f" }] }, "unsupported_option", "functions"],
      [{ function_call: "auto" }, "unsupported_option", "function_call"],
    ];
    for (const [fields, code, param] of cases) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: ask, ...fields });
      assertOpenAiError(r, 400, code);
      assert.equal(r.json.error.param, param, JSON.stringify(fields));
    }
    const pattern = await post("/v1/chat/completions", { model: "tiny", messages: ask, ...cases.find(([, code]) => code === "unsupported_schema_keyword")![0] });
    assert.match(pattern.json.error.message, /pattern/);
  });
});
