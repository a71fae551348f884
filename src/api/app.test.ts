// The HTTP API in-process (Fastify's inject): every error case and the wire format, over
// the real serving facade on a fake pool. Cases that need a real server live in test/.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeviceFailedError, OverloadedError, ShuttingDownError, SloWaitExceededError } from "../core/errors.ts";
import { answerWith, failAfter, untilAborted } from "../runtime/testing/FakeServingPool.ts";
import { assertOpenAiError, BODY_LIMIT_BYTES, events, setup, until } from "./testing/testApp.ts";

const hi = [{ role: "user", content: "hi" }];

describe("bad requests", () => {
  const { app, pool, post } = setup();

  it("malformed JSON is 400", async () => {
    assertOpenAiError(await post("/v1/chat/completions", "{not json"), 400, "invalid_json");
  });

  it("an empty body or a content type with no parser is 400", async () => {
    assertOpenAiError(await post("/v1/chat/completions", ""), 400, "invalid_json");
    const res = await app.inject({ method: "POST", url: "/v1/completions", headers: { "content-type": "application/xml" }, payload: "<hi/>" });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, "invalid_content_type");
  });

  it("a body that is not a JSON object is 400", async () => {
    assertOpenAiError(await post("/v1/completions", "[1, 2]"), 400, "invalid_request");
  });

  it("missing and mistyped fields are 400 and name the field", async () => {
    const r = await post("/v1/chat/completions", { model: "tiny" });
    assertOpenAiError(r, 400, "invalid_request");
    assert.equal(r.json.error.param, "messages");
    const t = await post("/v1/completions", { model: "tiny", prompt: "x", temperature: "hot" });
    assertOpenAiError(t, 400, "invalid_request");
    assert.equal(t.json.error.param, "temperature");
  });

  it("an unknown model is 404", async () => {
    const r = await post("/v1/chat/completions", { model: "nope", messages: hi });
    assertOpenAiError(r, 404, "model_not_found");
    assert.match(r.json.error.message, /nope/);
    assert.equal(r.json.error.param, "model");
    assertOpenAiError(await post("/v1/completions", { model: "nope", prompt: "x" }), 404, "model_not_found");
    const m = await app.inject({ method: "GET", url: "/v1/models/nope" });
    assert.equal(m.statusCode, 404);
    assert.equal(m.json().error.code, "model_not_found");
  });

  it("a body over the limit is 413", async () => {
    const r = await post("/v1/completions", { model: "tiny", prompt: "x".repeat(10_000) });
    assertOpenAiError(r, 413, "request_too_large");
    assert.match(r.json.error.message, new RegExp(`${BODY_LIMIT_BYTES} bytes`));
  });

  it("a prompt longer than the context is 400 naming both lengths", async () => {
    const r = await post("/v1/completions", { model: "tiny", prompt: "word ".repeat(60) });
    assertOpenAiError(r, 400, "context_length_exceeded");
    assert.equal(r.json.error.param, "prompt");
    assert.match(r.json.error.message, /128 tokens/);
    assert.match(r.json.error.message, /prompt is 301 tokens/);
    const c = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "word ".repeat(60) }] });
    assertOpenAiError(c, 400, "context_length_exceeded");
    assert.equal(c.json.error.param, "messages");
  });

  it("unsupported options are 400 and say so", async () => {
    const r = await post("/v1/completions", { model: "tiny", best_of: 2, prompt: "x" });
    assertOpenAiError(r, 400, "unsupported_option");
    assert.equal(r.json.error.param, "best_of");
    assert.match(r.json.error.message, /not supported/);
    for (const [field, value] of [["functions", [{ name: "f" }]]] as const) {
      const t = await post("/v1/chat/completions", { model: "tiny", [field]: value, messages: hi });
      assertOpenAiError(t, 400, "unsupported_option");
      assert.equal(t.json.error.param, field);
    }
    // Constrained steps report no logits: the pair is refused, not answered without logprobs.
    const both = await post("/v1/chat/completions", { model: "tiny", messages: hi, logprobs: true, response_format: { type: "json_object" } });
    assertOpenAiError(both, 400, "unsupported_option");
    assert.equal(both.json.error.param, "logprobs");
    for (const [field, value] of [
      ["best_of", 2],
      ["echo", true],
      ["suffix", "end"],
    ] as const) {
      const t = await post("/v1/completions", { model: "tiny", [field]: value, prompt: "x" });
      assertOpenAiError(t, 400, "unsupported_option");
      assert.equal(t.json.error.param, field);
    }
  });

  it("token ids outside the vocabulary are 400", async () => {
    const r = await post("/v1/completions", { model: "tiny", prompt: [1, 999999] });
    assertOpenAiError(r, 400, "invalid_request");
    assert.equal(r.json.error.param, "prompt");
  });

  it("an unknown route is a 404 in the same format", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/nothing" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, "not_found");
  });

  it("none of them reached the pool", () => {
    assert.equal(pool.calls.length, 0);
  });
});

describe("refusals by the pool", () => {
  it("overload is 429 with Retry-After, streamed or not", async () => {
    const { pool, post } = setup();
    pool.answer = () => Promise.reject(new OverloadedError("Model tiny is overloaded. Retry in 3 s.", 3));
    for (const stream of [false, true]) {
      const r = await post("/v1/completions", { model: "tiny", prompt: "go", stream });
      assertOpenAiError(r, 429, "rate_limit_exceeded");
      assert.equal(r.headers["retry-after"], "3");
    }
  });

  it("a request the late-wait cap ended is 503 slo_wait_exceeded with Retry-After, streamed or not", async () => {
    const { pool, post } = setup();
    pool.answer = () =>
      Promise.reject(new SloWaitExceededError("Request waited 3100 ms for a device without starting, past its TTFT target of 2000 ms; the server is overloaded", 4));
    for (const stream of [false, true]) {
      const r = await post("/v1/chat/completions", { model: "tiny", messages: hi, stream });
      assertOpenAiError(r, 503, "slo_wait_exceeded");
      assert.equal(r.json.error.type, "server_error");
      assert.equal(r.headers["retry-after"], "4");
      assert.match(r.json.error.message, /past its TTFT target of 2000 ms; the server is overloaded\. Retry in 4 s\./);
    }
  });

  it("draining is 503 for every route", async () => {
    const { app, pool, post } = setup();
    pool.isDraining = true;
    assertOpenAiError(await post("/v1/completions", { model: "tiny", prompt: "late", max_tokens: 2 }), 503, "shutting_down");
    const h = await app.inject({ method: "GET", url: "/health" });
    assert.equal(h.statusCode, 503);
    assert.equal(h.json().error.code, "shutting_down");
    assert.equal(pool.calls.length, 0);
  });

  it("a stream that fails before its first piece gets the error's status, not a broken stream", async () => {
    const { pool, post } = setup();
    pool.answer = failAfter([], new DeviceFailedError("Device dev0 failed (SIGABRT); the request was lost and can be retried"));
    const r = await post("/v1/chat/completions", { model: "tiny", messages: hi, stream: true });
    assertOpenAiError(r, 500, "device_failed");
    assert.match(r.headers["content-type"] as string, /^application\/json/);
  });

  it("a stream that fails after its first piece ends with an error event and no [DONE]", async () => {
    const { pool, post } = setup();
    pool.answer = failAfter(["Hel"], new DeviceFailedError("Device dev0 failed (SIGABRT)"));
    const r = await post("/v1/completions", { model: "tiny", prompt: "go", stream: true });
    assert.equal(r.status, 200);
    const data = events(r.body);
    assert.equal(JSON.parse(data[0]!).choices[0].text, "Hel");
    assert.equal(data.length, 2);
    assert.equal(JSON.parse(data[1]!).error.code, "device_failed");
  });
});

describe("wire format", () => {
  it("a completion: text, finish reason and usage; max_tokens defaults to 16", async () => {
    const { pool, post } = setup();
    const r = await post("/v1/completions", { model: "tiny", prompt: "abc", temperature: 0 });
    assert.equal(r.status, 200);
    assert.match(r.json.id, /^cmpl-/);
    assert.equal(r.json.object, "text_completion");
    assert.equal(typeof r.json.created, "number");
    assert.equal(r.json.model, "tiny");
    assert.deepEqual(r.json.choices, [{ index: 0, text: "Hello world", logprobs: null, finish_reason: "length" }]);
    assert.deepEqual(r.json.usage, { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 });
    assert.equal(pool.calls[0]!.maxTokens, 16);
    assert.equal(pool.calls[0]!.requestId, r.json.id);
    assert.deepEqual(Object.keys(r.json), ["id", "object", "created", "model", "choices", "usage"]);
  });

  it("a chat completion: the assistant's message; max tokens default to the context's room", async () => {
    const { pool, post } = setup();
    pool.answer = answerWith(["Hi", "!"], "stop");
    const r = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }], stop: "END", seed: 3, top_p: 0.5 });
    assert.equal(r.status, 200);
    assert.match(r.json.id, /^chatcmpl-/);
    assert.equal(r.json.object, "chat.completion");
    assert.deepEqual(r.json.choices, [{ index: 0, message: { role: "assistant", content: "Hi!" }, logprobs: null, finish_reason: "stop" }]);
    const p = pool.calls[0]!;
    assert.equal(p.maxTokens, 128 - p.promptTokens.length);
    assert.deepEqual(p.sampling, { temperature: 1, topP: 0.5, seed: 3 });
    assert.deepEqual(p.stop, ["END", "<|end|>"]);
    const capped = await post("/v1/chat/completions", { model: "tiny", messages: hi, max_tokens: 9, max_completion_tokens: 5 });
    assert.equal(capped.status, 200);
    assert.equal(pool.calls[1]!.maxTokens, 5, "max_completion_tokens wins");
  });

  it("a one-string prompt array is a prompt; a token array is tokens", async () => {
    const { pool, post } = setup();
    await post("/v1/completions", { model: "tiny", prompt: ["ab"] });
    await post("/v1/completions", { model: "tiny", prompt: [7, 8] });
    assert.deepEqual(pool.calls[0]!.promptTokens, [1, 97, 98]);
    assert.deepEqual(pool.calls[1]!.promptTokens, [7, 8]);
  });

  it("a chat stream: a role chunk, one chunk per token (empty ones too), the finish, usage when asked, [DONE]", async () => {
    const { pool, post } = setup();
    pool.answer = answerWith(["He", "", "llo"], "stop");
    const r = await post("/v1/chat/completions", { model: "tiny", messages: hi, stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/event-stream");
    assert.equal(r.headers["cache-control"], "no-cache");
    const data = events(r.body);
    assert.equal(data.at(-1), "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-/);
    for (const c of chunks) {
      assert.equal(c.id, id);
      assert.equal(c.object, "chat.completion.chunk");
      assert.equal(c.model, "tiny");
    }
    assert.deepEqual(
      chunks.slice(0, 5).map((c) => c.choices[0]),
      [
        { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
        { index: 0, delta: { content: "He" }, logprobs: null, finish_reason: null },
        { index: 0, delta: { content: "" }, logprobs: null, finish_reason: null },
        { index: 0, delta: { content: "llo" }, logprobs: null, finish_reason: null },
        { index: 0, delta: {}, logprobs: null, finish_reason: "stop" },
      ],
    );
    assert.deepEqual(chunks[5].choices, []);
    assert.deepEqual(chunks[5].usage, { prompt_tokens: pool.calls[0]!.promptTokens.length, completion_tokens: 3, total_tokens: pool.calls[0]!.promptTokens.length + 3 });
    assert.equal(chunks.length, 6);
  });

  it("a completion stream: text chunks, the finish, [DONE]; no usage unless asked", async () => {
    const { pool, post } = setup();
    pool.answer = answerWith(["a", "b"], "length");
    const r = await post("/v1/completions", { model: "tiny", prompt: "go", stream: true });
    const data = events(r.body);
    assert.equal(data.at(-1), "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.deepEqual(
      chunks.map((c) => [c.object, c.choices[0]]),
      [
        ["text_completion", { index: 0, text: "a", logprobs: null, finish_reason: null }],
        ["text_completion", { index: 0, text: "b", logprobs: null, finish_reason: null }],
        ["text_completion", { index: 0, text: "", logprobs: null, finish_reason: "length" }],
      ],
    );
    assert.equal(pool.calls[0]!.requestId, chunks[0].id);
  });

  it("lists models with their meta, and one model by id", async () => {
    const { app } = setup();
    const list = (await app.inject({ method: "GET", url: "/v1/models" })).json();
    assert.equal(list.object, "list");
    assert.deepEqual(list.data, [
      {
        id: "tiny",
        object: "model",
        created: 0,
        owned_by: "pitcher",
        meta: {
          stand_in: true,
          description: "fake tiny",
          architecture: "llama",
          file_type: "Q8_0",
          file_bytes: 1_000_000,
          context_tokens: 128,
          slo: { ttft_ms: 10_000, tbt_ms: 100 },
        },
      },
    ]);
    assert.deepEqual((await app.inject({ method: "GET", url: "/v1/models/tiny" })).json(), { id: "tiny", object: "model", created: 0, owned_by: "pitcher" });
  });

  it("health, metrics and the dashboard page come from what the app was given", async () => {
    const { app } = setup();
    assert.deepEqual((await app.inject({ method: "GET", url: "/health" })).json(), {
      status: "ok",
      activeRequests: 0,
      devices: [
        { id: "dev0", up: true, residentModels: ["tiny"] },
        { id: "dev1", up: false, residentModels: [] },
      ],
    });
    const m = await app.inject({ method: "GET", url: "/metrics" });
    assert.equal(m.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(m.body, "pitcher_up 1\n");
    const d = await app.inject({ method: "GET", url: "/dashboard" });
    assert.equal(d.statusCode, 200);
    assert.match(d.headers["content-type"] as string, /^text\/html/);
  });
});

describe("edges", () => {
  it("a body with a __proto__ key (or constructor.prototype) is served with the key dropped, not called invalid JSON", async () => {
    const { pool, post } = setup();
    const r = await post("/v1/completions", '{"model":"tiny","prompt":"x","max_tokens":2,"__proto__":{"n":2}}');
    assert.equal(r.status, 200, r.body);
    const c = await post("/v1/chat/completions", '{"model":"tiny","messages":[{"role":"user","content":"hi","__proto__":{"role":"x"}}],"constructor":{"prototype":{"n":2}}}');
    assert.equal(c.status, 200, c.body);
    assert.equal(pool.calls.length, 2);
    assert.equal(({} as Record<string, unknown>).n, undefined, "no prototype was touched");
  });

  it("max_tokens beyond the room the context leaves is 400 naming both numbers; with none, a completion gets 16 cut to the room", async () => {
    const { pool, post } = setup();
    const r = await post("/v1/completions", { model: "tiny", prompt: "abc", max_tokens: 500 });
    assertOpenAiError(r, 400, "context_length_exceeded");
    assert.equal(r.json.error.param, "max_tokens");
    assert.match(r.json.error.message, /max_tokens is 500\b/);
    assert.match(r.json.error.message, /room for 124 output tokens/);
    const c = await post("/v1/chat/completions", { model: "tiny", messages: hi, max_completion_tokens: 500 });
    assertOpenAiError(c, 400, "context_length_exceeded");
    assert.equal(c.json.error.param, "max_completion_tokens");
    assert.equal(pool.calls.length, 0);
    const fits = await post("/v1/completions", { model: "tiny", prompt: "x".repeat(120) });
    assert.equal(fits.status, 200);
    assert.equal(pool.calls[0]!.maxTokens, 128 - 121);
  });

  it("tells every answer as an outcome: status, code, route, model; never the prompt", async () => {
    const { app, post, outcomes } = setup();
    await post("/v1/completions", { model: "tiny", prompt: "a secret prompt", best_of: 2 });
    await app.inject({ method: "GET", url: "/v1/nothing?key=secret" });
    await post("/v1/completions", { model: "tiny", prompt: "x", max_tokens: 2 });
    await until(() => outcomes.length === 3);
    assert.deepEqual(outcomes, [
      { status: 400, code: "unsupported_option", route: "/v1/completions", method: "POST", model: "tiny", admitted: false },
      { status: 404, code: "not_found", route: "/v1/nothing", method: "GET", model: null, admitted: false },
      { status: 200, code: "none", route: "/v1/completions", method: "POST", model: "tiny", admitted: true },
    ]);
  });

  it("while draining, the 503 lets a keep-alive client go", async () => {
    const { app, pool } = setup();
    pool.isDraining = true;
    const h = await app.inject({ method: "GET", url: "/v1/models" });
    assert.equal(h.statusCode, 503);
    assert.equal(h.headers.connection, "close");
  });

  it("at the drain deadline, a running request gets 503 shutting_down and a running stream ends with that error event", async () => {
    const { pool, post, inFlight, outcomes } = setup();
    pool.answer = async (params) => {
      params.onDelta?.("Hel");
      return untilAborted(params);
    };
    const plain = post("/v1/completions", { model: "tiny", prompt: "go" });
    const streamed = post("/v1/completions", { model: "tiny", prompt: "go", stream: true });
    await until(() => inFlight.size === 2 && pool.calls.length === 2);
    assert.equal(inFlight.endAll(new ShuttingDownError("the drain deadline passed")), 2);
    assertOpenAiError(await plain, 503, "shutting_down");
    const s = await streamed;
    assert.equal(s.status, 200);
    const data = events(s.body);
    assert.equal(JSON.parse(data[0]!).choices[0].text, "Hel");
    assert.equal(JSON.parse(data.at(-1)!).error.code, "shutting_down");
    await until(() => outcomes.length === 2);
    assert.deepEqual(outcomes.map((o) => [o.status, o.code]).sort(), [
      [200, "shutting_down"],
      [503, "shutting_down"],
    ]);
  });
});
