// POST /v1/embeddings in-process (Fastify's inject) over the real serving facade on a fake
// pool: the wire format, input shapes, base64, and every refusal. The real server and the
// official client are in test/embeddings.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeServingPool, fakeCodecs, fakeModel } from "../runtime/testing/FakeServingPool.ts";
import { PoolServing } from "../runtime/Serving.ts";
import { buildApp } from "./app.ts";
import { float32Base64 } from "./embeddingRoutes.ts";
import { assertOpenAiError, TIMEOUTS } from "./testing/testApp.ts";

/** A fake embedder's vector: [prompt length, first token, 0.5]. */
const vectorOf = (tokens: number[]) => [tokens.length, tokens[0]!, 0.5];

function setup() {
  const pool = new FakeServingPool([fakeModel("tiny", 128), { ...fakeModel("embedder", 16), embedding: true }]);
  pool.answer = async (p) => ({ id: p.requestId, text: "", finishReason: "length", promptTokens: p.promptTokens.length, completionTokens: 0, embedding: vectorOf(p.promptTokens) });
  const app = buildApp(new PoolServing(pool, fakeCodecs), {
    bodyLimitBytes: 1 << 20,
    timeouts: TIMEOUTS,
    metrics: { contentType: "text/plain", text: async () => "" },
    live: { view: (cursor: number) => ({ cursor }) },
  });
  const post = async (body: unknown) => {
    const res = await app.inject({ method: "POST", url: "/v1/embeddings", headers: { "content-type": "application/json" }, payload: JSON.stringify(body) });
    return { status: res.statusCode, json: res.json() };
  };
  return { pool, post, app };
}

describe("POST /v1/embeddings", () => {
  const { pool, post, app } = setup();

  it("answers OpenAI's list shape with one embedding per input, in order, and usage", async () => {
    const r = await post({ model: "embedder", input: ["ab", "xyz"], user: "u1", encoding_format: "float" });
    assert.equal(r.status, 200);
    // fakeCodecs: a BOS (1) and one token per character.
    assert.deepEqual(r.json, {
      object: "list",
      data: [
        { object: "embedding", index: 0, embedding: [3, 1, 0.5] },
        { object: "embedding", index: 1, embedding: [4, 1, 0.5] },
      ],
      model: "embedder",
      usage: { prompt_tokens: 7, total_tokens: 7 },
    });
    const calls = pool.calls.slice(-2);
    for (const c of calls) {
      assert.equal(c.embed, true);
      assert.equal(c.maxTokens, 1);
    }
  });

  it("takes a string, token ids, and an array of token-id arrays", async () => {
    assert.deepEqual((await post({ model: "embedder", input: "hi" })).json.data[0].embedding, [3, 1, 0.5]);
    assert.deepEqual((await post({ model: "embedder", input: [7, 8] })).json.data[0].embedding, [2, 7, 0.5]);
    const many = await post({ model: "embedder", input: [[7], [9, 9, 9]] });
    assert.deepEqual(
      many.json.data.map((d: { embedding: number[] }) => d.embedding),
      [
        [1, 7, 0.5],
        [3, 9, 0.5],
      ],
    );
  });

  it("encodes base64 as little-endian float32 bytes", async () => {
    const r = await post({ model: "embedder", input: "hi", encoding_format: "base64" });
    assert.equal(r.json.data[0].embedding, float32Base64([3, 1, 0.5]));
    const bytes = Buffer.from(r.json.data[0].embedding, "base64");
    assert.deepEqual(
      [0, 1, 2].map((i) => bytes.readFloatLE(i * 4)),
      [3, 1, 0.5],
    );
  });

  it("refuses dimensions, unknown fields and bad encodings by name", async () => {
    const dims = await post({ model: "embedder", input: "hi", dimensions: 2 });
    assertOpenAiError(dims, 400, "unsupported_option");
    assert.equal(dims.json.error.param, "dimensions");
    const unknown = await post({ model: "embedder", input: "hi", truncate: true });
    assertOpenAiError(unknown, 400, "unsupported_option");
    assert.equal(unknown.json.error.param, "truncate");
    const enc = await post({ model: "embedder", input: "hi", encoding_format: "int8" });
    assertOpenAiError(enc, 400, "invalid_request");
    assert.equal(enc.json.error.param, "encoding_format");
  });

  it("refuses bad inputs, a model that does not embed and an unknown model", async () => {
    for (const input of [[], "", ["a", ""], [["x"]], ["a", [1]], 5, [-1]]) assertOpenAiError(await post({ model: "embedder", input }), 400, "invalid_request");
    assertOpenAiError(await post({ model: "embedder" }), 400, "invalid_request");
    assertOpenAiError(await post({ model: "embedder", input: "this input is far too long" }), 400, "context_length_exceeded");
    assertOpenAiError(await post({ model: "embedder", input: [5000] }), 400, "invalid_request");
    const wrong = await post({ model: "tiny", input: "hi" });
    assertOpenAiError(wrong, 400, "model_cannot_embed");
    assert.equal(wrong.json.error.param, "model");
    assertOpenAiError(await post({ model: "nope", input: "hi" }), 404, "model_not_found");
    const gen = await app.inject({ method: "POST", url: "/v1/completions", payload: { model: "embedder", prompt: "hi" } });
    assertOpenAiError({ status: gen.statusCode, json: gen.json() }, 400, "model_only_embeds");
  });

  it("marks embedding models in /v1/models", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/models" });
    const meta = Object.fromEntries(res.json().data.map((m: { id: string; meta: { embedding?: boolean } }) => [m.id, m.meta.embedding ?? false]));
    assert.deepEqual(meta, { tiny: false, embedder: true });
  });
});
