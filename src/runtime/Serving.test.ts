import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ContextLengthError, InvalidRequestError, ModelNotFoundError, OverloadedError, PitcherError } from "../core/errors.ts";
import { answerWith, failAfter, FakeServingPool, fakeCodecs, fakeModel, untilAborted } from "./testing/FakeServingPool.ts";
import { PoolServing, type ServingRequest } from "./Serving.ts";

const greedy = { temperature: 0 };

function setup(contextTokens = 64) {
  const pool = new FakeServingPool([fakeModel("tiny", contextTokens, 1000)]);
  return { pool, serving: new PoolServing(pool, fakeCodecs) };
}

function completion(prompt: string | number[], extra: Partial<ServingRequest> = {}): ServingRequest {
  return { modelId: "tiny", input: { kind: "completion", prompt }, sampling: greedy, stop: [], ...extra };
}

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of pieces) out.push(p);
  return out;
}

describe("serving facade", async () => {
  it("tokenizes a completion prompt, names it cmpl-…, and asks the pool for it", async () => {
    const { pool, serving } = setup();
    const g = await serving.generate(completion("abc", { maxTokens: 5, stop: ["", "\n"], sampling: { temperature: 0.5, topP: 0.9, seed: 7 } }));
    assert.match(g.id, /^cmpl-[0-9a-f-]{36}$/);
    assert.equal(g.promptTokens, 4);
    const p = pool.calls[0]!;
    assert.equal(p.requestId, g.id);
    assert.equal(p.modelId, "tiny");
    assert.deepEqual(p.promptTokens, [1, 97, 98, 99]);
    assert.equal(p.maxTokens, 5);
    assert.deepEqual(p.sampling, { temperature: 0.5, topP: 0.9, seed: 7 });
    assert.deepEqual(p.stop, ["\n"], "empty stop strings are dropped");
    const r = await g.result;
    assert.equal(r.text, "Hello world");
  });

  it("prompts a chat through the template, names it chatcmpl-…, and adds the template's stop strings after the client's", async () => {
    const { pool, serving } = setup(256);
    const g = await serving.generate({ modelId: "tiny", input: { kind: "chat", messages: [{ role: "user", content: "hi" }] }, sampling: greedy, stop: ["END"] });
    assert.match(g.id, /^chatcmpl-/);
    assert.deepEqual(pool.calls[0]!.stop, ["END", "<|end|>"]);
    assert.equal(pool.calls[0]!.promptTokens.length, g.promptTokens);
  });

  it("gives all the room the context leaves when no max tokens are asked, and a default cut to that room", async () => {
    const { pool, serving } = setup(10);
    await serving.generate(completion("abc"));
    await serving.generate(completion("abc", { maxTokens: 2 }));
    await serving.generate(completion("abc", { maxTokens: 6 }));
    await serving.generate(completion("abc", { defaultMaxTokens: 16 }));
    await serving.generate(completion("abc", { defaultMaxTokens: 3 }));
    assert.deepEqual(
      pool.calls.map((c) => c.maxTokens),
      [6, 2, 6, 6, 3],
    );
  });

  it("refuses max tokens beyond the room the context leaves, naming both numbers and the field", async () => {
    const { pool, serving } = setup(10);
    await assert.rejects(
      () => serving.generate(completion("abc", { maxTokens: 7 })),
      (e: unknown) => e instanceof ContextLengthError && e.param === "max_tokens" && /max_tokens is 7\b/.test(e.message) && /room for 6 output tokens/.test(e.message),
    );
    await assert.rejects(
      () => serving.generate(completion("abc", { maxTokens: 100, maxTokensParam: "max_completion_tokens" })),
      (e: unknown) => e instanceof ContextLengthError && e.param === "max_completion_tokens" && /max_completion_tokens is 100\b/.test(e.message),
    );
    assert.equal(pool.calls.length, 0);
  });

  it("refuses a prompt that leaves no room for output, naming both lengths and the field", async () => {
    const { pool, serving } = setup(10);
    await assert.rejects(
      () => serving.generate(completion("abcdefghi")),
      (e: unknown) => e instanceof ContextLengthError && e.param === "prompt" && /holds 10 tokens/.test(e.message) && /prompt is 10 tokens/.test(e.message),
    );
    await assert.rejects(
      () => serving.generate({ modelId: "tiny", input: { kind: "chat", messages: [{ role: "user", content: "far too long a chat" }] }, sampling: greedy, stop: [] }),
      (e: unknown) => e instanceof ContextLengthError && e.param === "messages",
    );
    await serving.generate(completion("abcdefgh"));
    assert.equal(pool.calls.length, 1, "only the prompt that fits reached the pool");
    assert.equal(pool.calls[0]!.maxTokens, 1);
  });

  it("passes token ids through and refuses ids outside the vocabulary", async () => {
    const { pool, serving } = setup();
    await serving.generate(completion([5, 6, 999]));
    assert.deepEqual(pool.calls[0]!.promptTokens, [5, 6, 999]);
    await assert.rejects(
      () => serving.generate(completion([1, 1000])),
      (e: unknown) => e instanceof InvalidRequestError && e.param === "prompt" && /1000 is outside the model's vocabulary of 1000/.test(e.message),
    );
    await assert.rejects(
      () => serving.generate(completion([])),
      (e: unknown) => e instanceof InvalidRequestError && /empty/.test(e.message),
    );
  });

  it("refuses an unknown model before anything else", async () => {
    const { pool, serving } = setup();
    await assert.rejects(() => serving.generate({ ...completion("x"), modelId: "nope" }), ModelNotFoundError);
    assert.equal(pool.calls.length, 0);
  });

  it("streams one piece per token, empty ones included, and ends with the result", async () => {
    const { pool, serving } = setup();
    pool.answer = answerWith(["a", "", "b", "c"], "stop");
    const g = await serving.generate(completion("x"));
    assert.deepEqual(await collect(g.pieces), ["a", "", "b", "c"]);
    const r = await g.result;
    assert.equal(r.finishReason, "stop");
    assert.equal(r.completionTokens, 4);
  });

  it("pieces already sent come out before the error that ended the request", async () => {
    const { pool, serving } = setup();
    pool.answer = failAfter(["a", "b"], new PitcherError("boom", "device_failed", 500, "server_error"));
    const g = await serving.generate(completion("x"));
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const p of g.pieces) seen.push(p);
    }, /boom/);
    assert.deepEqual(seen, ["a", "b"]);
    await assert.rejects(g.result, /boom/);
  });

  it("a refusal by the pool comes out of the pieces before any piece, and reading only the pieces leaves nothing unhandled", async () => {
    const { pool, serving } = setup();
    pool.answer = () => Promise.reject(new OverloadedError("busy", 3));
    const g = await serving.generate(completion("x"));
    await assert.rejects(collect(g.pieces), OverloadedError);
    // A non-streaming caller reads only the result.
    const h = await serving.generate(completion("x"));
    await assert.rejects(h.result, OverloadedError);
  });

  it("hands the caller's abort signal to the pool; the cancellation ends the pieces", async () => {
    const { pool, serving } = setup();
    pool.answer = untilAborted;
    const ac = new AbortController();
    const g = await serving.generate(completion("x", { signal: ac.signal }));
    assert.equal(pool.calls[0]!.signal, ac.signal);
    ac.abort();
    await assert.rejects(collect(g.pieces), (e: unknown) => e instanceof PitcherError && e.code === "cancelled");
  });

  it("tells what is served and how the pool is", async () => {
    const { pool, serving } = setup();
    assert.deepEqual(
      serving.models().map((m) => m.id),
      ["tiny"],
    );
    assert.equal(serving.model("tiny")!.vocabularySize, 1000);
    assert.equal(serving.model("nope"), undefined);
    pool.activeRequests = 2;
    assert.deepEqual(serving.health(), {
      status: "ok",
      activeRequests: 2,
      devices: [
        { id: "dev0", up: true, residentModels: ["tiny"] },
        { id: "dev1", up: false, residentModels: [] },
      ],
    });
    pool.isDraining = true;
    assert.equal(serving.draining, true);
    assert.equal(serving.health().status, "draining");
  });
  it("gives each sampled request without a seed a seed of its own, and keeps a given one", async () => {
    const pool = new FakeServingPool([fakeModel("tiny", 64, 1000)]);
    let next = 100;
    const serving = new PoolServing(pool, fakeCodecs, { drawSeed: () => next++ });
    const sampled = { temperature: 1 };
    await Promise.all([
      (await serving.generate(completion("a", { sampling: sampled }))).result,
      (await serving.generate(completion("a", { sampling: sampled }))).result,
      (await serving.generate(completion("a", { sampling: { temperature: 1, seed: 7 } }))).result,
      (await serving.generate(completion("a", { sampling: greedy }))).result,
    ]);
    assert.deepEqual(
      pool.calls.map((c) => c.sampling),
      [{ temperature: 1, seed: 100 }, { temperature: 1, seed: 101 }, { temperature: 1, seed: 7 }, { temperature: 0 }],
    );
  });
});
