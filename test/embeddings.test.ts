// POST /v1/embeddings on the real server and engine, with the official openai client: the
// embedded catalog's embedding stand-in (llama architecture, mean pooling), and an embedding
// model pooled on one device with a generating model.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { CommandRecord } from "../src/runtime/Pool.ts";
import { standInPaths, startTestServer } from "./helpers.ts";

const EMBEDDER = "embed-5m-f16";

function assertUnit(v: number[]): void {
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, `length ${Math.hypot(...v)}`);
}

function assertClose(a: number[], b: number[], tolerance = 1e-6): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tolerance, `component ${i}: ${a[i]} vs ${b[i]}`);
}

async function refusal(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    return e;
  }
  assert.fail("the request was not refused");
}

/** Vectors of the default catalog's embedder, kept to compare with another pool's. */
const reference = new Map<string, number[]>();

describe("embeddings with the openai client, default catalog", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  before(async () => {
    server = await startTestServer({ devices: { count: 1 } });
  });
  after(async () => server.shutdown());

  it("lists the embedding stand-in, marked meta.embedding", async () => {
    const list = await server.client.models.list();
    const embedders = list.data.filter((m) => (m as unknown as { meta: { embedding?: boolean } }).meta.embedding).map((m) => m.id);
    assert.deepEqual(embedders, [EMBEDDER]);
  });

  it("embeds one text: a unit vector in OpenAI's shape, with usage (base64 on the wire, decoded by the client)", async () => {
    const r = await server.client.embeddings.create({ model: EMBEDDER, input: "The quick brown fox", user: "tester" });
    assert.equal(r.object, "list");
    assert.equal(r.model, EMBEDDER);
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0]!.object, "embedding");
    assert.equal(r.data[0]!.index, 0);
    const v = r.data[0]!.embedding;
    assert.equal(v.length, 256);
    assertUnit(v);
    assert.ok(r.usage.prompt_tokens > 1);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
    const float = await server.client.embeddings.create({ model: EMBEDDER, input: "The quick brown fox", encoding_format: "float" });
    // base64 carries float32: the same vector to float32 precision.
    assertClose(float.data[0]!.embedding, v, 1e-6);
    reference.set("The quick brown fox", float.data[0]!.embedding);
  });

  it("embeds a batch in order; the same input gives the same vector, another input another", async () => {
    const r = await server.client.embeddings.create({
      model: EMBEDDER,
      input: ["The quick brown fox", "jumps over the lazy dog", "The quick brown fox"],
      encoding_format: "float",
    });
    assert.deepEqual(
      r.data.map((d) => d.index),
      [0, 1, 2],
    );
    const [a, b, c] = r.data.map((d) => d.embedding);
    assert.deepEqual(a, c);
    assert.deepEqual(a, reference.get("The quick brown fox"));
    assert.ok(a!.some((x, i) => Math.abs(x - b![i]!) > 1e-3));
    for (const v of [a!, b!]) assertUnit(v);
    const tokens = await server.client.embeddings.create({
      model: EMBEDDER,
      input: [
        [1, 400, 401],
        [1, 402],
      ],
      encoding_format: "float",
    });
    assert.equal(tokens.data.length, 2);
    assert.equal(tokens.usage.prompt_tokens, 5);
  });

  it("refuses dimensions, a model that does not embed, an unknown model, and chat on the embedding model", async () => {
    const dims = await refusal(server.client.embeddings.create({ model: EMBEDDER, input: "x", dimensions: 64 }));
    assert.equal(dims.status, 400);
    assert.equal(dims.code, "unsupported_option");
    assert.equal(dims.param, "dimensions");
    const gen = await refusal(server.client.embeddings.create({ model: "llama-5m-q8", input: "x" }));
    assert.equal(gen.status, 400);
    assert.equal(gen.code, "model_cannot_embed");
    const unknown = await refusal(server.client.embeddings.create({ model: "nope", input: "x" }));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, "model_not_found");
    const chat = await refusal(server.client.chat.completions.create({ model: EMBEDDER, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }));
    assert.equal(chat.status, 400);
    assert.equal(chat.code, "model_only_embeds");
  });
});

describe("an embedding model pools with a generating model on one device", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const commands: CommandRecord[] = [];
  before(async () => {
    const paths = standInPaths();
    server = await startTestServer({
      // One device with room for one of the two models: serving both means swapping them.
      devices: { count: 1, memory: "14MB" },
      // Calibration measures the embedding model as embeddings run (prefill only).
      scheduler: { admissionTtftFactor: 0, calibrate: true },
      models: [
        { id: "gen", path: paths["llama-5m-q8"] },
        { id: "emb", path: paths[EMBEDDER] },
      ],
    });
    server.pool.on("command", (c) => commands.push(c));
  });
  after(async () => server.shutdown());

  it("an embedding sent while a generation streams: both complete, the models swap, nothing is left behind", async () => {
    const stream = await server.client.completions.create({
      model: "gen",
      prompt: "Once upon a time",
      max_tokens: 48,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let completionTokens = 0;
    let embedding: Promise<OpenAI.CreateEmbeddingResponse> | undefined;
    for await (const chunk of stream) {
      // The first token is out: the generation runs; now the embedding arrives.
      embedding ??= server.client.embeddings.create({ model: "emb", input: "The quick brown fox", encoding_format: "float" });
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    const e = await embedding!;
    assert.equal(completionTokens, 48);
    // The same file gives the same vector in another pool, after swaps.
    assertClose(e.data[0]!.embedding, reference.get("The quick brown fox")!, 1e-6);
    const loads = commands.filter((c) => c.kind === "load").map((c) => c.modelId);
    assert.ok(loads.includes("emb") && loads.includes("gen"), `loads: ${loads.join(", ")}`);
    assert.ok(
      commands.some((c) => c.evictModelIds.length > 0),
      "one model made room for the other",
    );
    const embedPrefills = commands.filter((c) => c.kind === "prefill" && c.modelId === "emb");
    assert.equal(embedPrefills.length, 1, "the input went in one prefill");
    assert.equal(server.pool.scheduler.activeRequestCount, 0);
    for (const d of server.pool.scheduler.snapshot().devices) assert.equal(d.kvBytes, 0);
  });
});
