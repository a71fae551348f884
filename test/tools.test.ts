// Tool calling against a running server: the official openai client and LangChain's
// ChatOpenAI (a client no one here wrote), on a random-weight stand-in. Its text is
// gibberish, so only the grammar makes it call tools: `required` and named choices must
// always give calls whose arguments validate against their schemas; `auto` is checked for
// shape only (such a model rarely chooses a call).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AIMessage, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { Ajv } from "ajv";
import OpenAI from "openai";
import type { ChatCompletionTool } from "openai/resources/chat/completions";
import { z } from "zod";
import { standInPaths, startTestServer } from "./helpers.ts";

const MODEL = "llama-5m-q8";

// Bounded strings and enums: a random-weight model rarely closes an unbounded string.
const weatherParams = {
  type: "object",
  properties: { city: { type: "string", maxLength: 16 }, unit: { enum: ["celsius", "fahrenheit"] }, days: { type: "integer" } },
  required: ["city", "unit", "days"],
  additionalProperties: false,
};
const tools: ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Current weather of a city", parameters: weatherParams } },
  { type: "function", function: { name: "get_time", description: "Current time", parameters: { type: "object", properties: {} } } },
];
const ask: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];

describe("tool calling through the openai client", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const ajv = new Ajv();
  before(async () => {
    server = await startTestServer({ devices: { count: 1 }, models: [{ id: MODEL, path: standInPaths()[MODEL] }] });
  });
  after(async () => server.shutdown());

  const assertValidCall = (call: OpenAI.ChatCompletionMessageToolCall | undefined, name?: string) => {
    assert.ok(call && call.type === "function", JSON.stringify(call));
    assert.match(call.id, /^call_/);
    if (name) assert.equal(call.function.name, name);
    const params = tools.find((t) => t.type === "function" && t.function.name === call.function.name);
    assert.ok(params && params.type === "function", call.function.name);
    assert.ok(ajv.validate(params.function.parameters!, JSON.parse(call.function.arguments)), `${call.function.arguments}: ${ajv.errorsText()}`);
  };

  it("tool_choice required: the reply is a call with schema-valid arguments, finish_reason tool_calls", async () => {
    for (const seed of [1, 2, 3]) {
      const r = await server.client.chat.completions.create({ model: MODEL, messages: ask, tools, tool_choice: "required", parallel_tool_calls: false, max_tokens: 200, seed });
      const choice = r.choices[0]!;
      assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice.message));
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.tool_calls?.length, 1);
      assertValidCall(choice.message.tool_calls[0]);
    }
  });

  it("a named function, streamed: the client assembles the call from delta.tool_calls", async () => {
    const stream = server.client.chat.completions.stream({
      model: MODEL,
      messages: ask,
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      max_tokens: 200,
      seed: 7,
    });
    const done = await stream.finalChatCompletion();
    assert.equal(done.choices[0]!.finish_reason, "tool_calls");
    assert.equal(done.choices[0]!.message.tool_calls?.length, 1);
    assertValidCall(done.choices[0]!.message.tool_calls[0], "get_weather");
  });

  it("parallel_tool_calls: one to eight calls in one turn, each valid, the same streamed", async () => {
    // A function without arguments: eight calls of it fit in max_tokens.
    const body = { model: MODEL, messages: ask, tools: [tools[1]!], tool_choice: "required" as const, max_tokens: 400, seed: 3 };
    const r = await server.client.chat.completions.create(body);
    const calls = r.choices[0]!.message.tool_calls ?? [];
    assert.equal(r.choices[0]!.finish_reason, "tool_calls");
    assert.ok(calls.length >= 1 && calls.length <= 8, `${calls.length} calls`);
    for (const c of calls) assertValidCall(c);
    assert.equal(new Set(calls.map((c) => c.id)).size, calls.length, "ids differ");
    const streamed = await server.client.chat.completions.stream(body).finalChatCompletion();
    const fn = (cs: OpenAI.ChatCompletionMessageToolCall[] | undefined) => (cs ?? []).map((c) => (c.type === "function" ? c.function : c));
    assert.deepEqual(fn(streamed.choices[0]!.message.tool_calls), fn(calls), "a seeded request calls the same, streamed or not");
  });

  it("tool_choice auto: either text or valid calls, streamed or not", async () => {
    const r = await server.client.chat.completions.create({ model: MODEL, messages: ask, tools, max_tokens: 24, seed: 1 });
    const m = r.choices[0]!.message;
    if (m.tool_calls?.length) for (const c of m.tool_calls) assertValidCall(c);
    else assert.equal(typeof m.content, "string");
    assert.ok(["stop", "length", "tool_calls"].includes(r.choices[0]!.finish_reason));
    const done = await server.client.chat.completions.stream({ model: MODEL, messages: ask, tools, max_tokens: 24, seed: 1 }).finalChatCompletion();
    assert.deepEqual(done.choices[0]!.message.content, m.content);
  });

  it("a history with calls and tool results is answered; tool_choice none answers in text", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      ...ask,
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_abc", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius","days":1}' } }],
      },
      { role: "tool", tool_call_id: "call_abc", content: '{"temperature": 21}' },
    ];
    const r = await server.client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: "none", max_tokens: 8 });
    assert.equal(typeof r.choices[0]!.message.content, "string");
    assert.equal(r.choices[0]!.message.tool_calls, undefined);
    assert.equal(r.choices[0]!.finish_reason, "length");
  });

  it("refuses what it cannot honour, by name", async () => {
    const refused = async (body: Record<string, unknown>, code: string, param: string) => {
      await assert.rejects(
        server.client.chat.completions.create({ model: MODEL, messages: ask, ...body } as never),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && e.code === code && (e.error as { param?: string }).param === param,
      );
    };
    await refused(
      { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { s: { type: "string", pattern: "^a" } } } } }] },
      "unsupported_schema_keyword",
      "tools.0.function.parameters.properties.s.pattern",
    );
    await refused({ tools, tool_choice: { type: "function", function: { name: "nope" } } }, "invalid_request", "tool_choice");
    await refused({ messages: [...ask, { role: "tool", tool_call_id: "call_x", content: "1" }] }, "invalid_request", "messages.1.tool_call_id");
  });
});

describe("LangChain's ChatOpenAI against Pitcher", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let llm: ChatOpenAI;
  before(async () => {
    server = await startTestServer({ devices: { count: 1 }, models: [{ id: MODEL, path: standInPaths()[MODEL] }] });
    llm = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL: `${server.url}/v1` }, maxRetries: 0, maxTokens: 200, temperature: 1 });
  });
  after(async () => server.shutdown());

  const weatherSchema = {
    type: "object",
    properties: { city: { type: "string", maxLength: 16 }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
    required: ["city", "unit"],
  } as const;
  const getWeather = tool(async (args: { city: string }) => JSON.stringify({ city: args.city, temperature: 21 }), {
    name: "get_weather",
    description: "Current weather of a city",
    schema: weatherSchema,
  });

  it("bindTools: tool call, tool message, final answer", async () => {
    const withTools = llm.bindTools([getWeather], { tool_choice: "get_weather", parallel_tool_calls: false });
    const question = new HumanMessage("What is the weather in Paris?");
    const call = await withTools.invoke([question]);
    assert.ok(call instanceof AIMessage);
    assert.equal(call.tool_calls?.length, 1, JSON.stringify(call));
    const tc = call.tool_calls![0]!;
    assert.equal(tc.name, "get_weather");
    assert.ok(new Ajv().validate(weatherSchema, tc.args), JSON.stringify(tc.args));
    const result = new ToolMessage({ tool_call_id: tc.id!, name: tc.name, content: JSON.stringify({ city: tc.args.city, temperature: 21 }) });
    const brief = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL: `${server.url}/v1` }, maxRetries: 0, maxTokens: 16 });
    const answer = await brief.bindTools([getWeather], { tool_choice: "none" }).invoke([question, call, result]);
    assert.equal(typeof answer.content, "string");
    assert.deepEqual(answer.tool_calls ?? [], []);
  });

  it("withStructuredOutput (function calling): an object that validates against the schema", async () => {
    const schema = z.object({ name: z.string().max(12), age: z.number().int(), pet: z.enum(["cat", "dog"]) });
    // LangChain leaves parallel calls on: room for all eight a random-weight model may write.
    const roomy = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL: `${server.url}/v1` }, maxRetries: 0, maxTokens: 600 });
    const structured = roomy.withStructuredOutput(schema, { method: "functionCalling", name: "person" });
    const personSchema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" }, pet: { enum: ["cat", "dog"] } },
      required: ["name", "age", "pet"],
    };
    const ajv = new Ajv();
    for (let i = 0; i < 2; i++) {
      const person = await structured.invoke("Describe a person.");
      // ajv, not zod: JSON Schema's maxLength counts code points, zod's max UTF-16 units.
      assert.ok(ajv.validate(personSchema, person), `${JSON.stringify(person)}: ${ajv.errorsText()}`);
    }
  });

  it("streams a bound tool call into one tool_call chunk sequence", async () => {
    const withTools = llm.bindTools([getWeather], { tool_choice: "get_weather", parallel_tool_calls: false });
    let merged: Awaited<ReturnType<typeof withTools.invoke>> | undefined;
    for await (const chunk of await withTools.stream("Weather in Oslo?")) merged = merged ? (merged.concat(chunk) as typeof merged) : chunk;
    assert.equal(merged?.tool_calls?.[0]?.name, "get_weather");
  });
});
