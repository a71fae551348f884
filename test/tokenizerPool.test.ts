// Prompts are tokenized on worker threads (the event loop that streams tokens stays free),
// with the same tokens as the main thread's tokenizer; prompt text over the byte cap is
// refused before any tokenizing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TokenizerPool } from "../src/engine/tokenizerPool.ts";
import { Tokenizers } from "../src/engine/Tokenizers.ts";
import { postJson, standInPaths, startTestServer, STORIES } from "./helpers.ts";

describe("tokenizer pool", () => {
  const models = [
    { id: "stories", path: STORIES },
    { id: "small", path: standInPaths()["llama-5m-q8"]! },
  ];
  let local: Tokenizers;
  let pool: TokenizerPool;
  before(async () => {
    local = await Tokenizers.load(models);
    pool = new TokenizerPool(local, models, 2);
    await pool.ready();
  });
  after(async () => {
    await pool.dispose();
    await local.dispose();
  });

  it("gives the main thread's tokens for completion and chat prompts, computed on a worker thread", async () => {
    const before = pool.tasksOffThread;
    const text = "Once upon a time, ünïcödé 🐳 and\nnew lines. ".repeat(50);
    const messages = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: text },
    ];
    for (const m of models) {
      assert.deepEqual(await pool.get(m.id).completionPrompt(text), local.get(m.id).completionPrompt(text));
      assert.deepEqual(await pool.get(m.id).chatPrompt(messages), local.get(m.id).chatPrompt(messages));
    }
    assert.equal(pool.tasksOffThread - before, 4);
    const tokens = local.get("small").completionPrompt("Hello there");
    assert.equal(pool.get("small").detokenize(tokens), local.get("small").detokenize(tokens), "detokenizing stays local");
  });

  it("a model it does not know is refused as the main thread's tokenizer refuses it, and the pool goes on", async () => {
    assert.throws(() => pool.get("nope"), /no tokenizer for nope/);
    assert.ok((await pool.get("small").completionPrompt("x")).length > 0);
  });
});

describe("large prompts against the real server", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  before(async () => {
    server = await startTestServer({ devices: { count: 1 }, models: [{ id: "m", path: standInPaths()["llama-5m-q8"] }], server: { maxPromptBytes: 500_000 } });
  });
  after(() => server.shutdown());

  it("a stream runs to its end while large prompts are tokenized off the event loop and refused", async () => {
    const offBefore = server.tokenizerPool!.tasksOffThread;
    const stream = await server.client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }], max_tokens: 40, temperature: 0, stream: true });
    const chunks = (async () => {
      let n = 0;
      for await (const c of stream) if (c.choices[0]?.delta.content !== undefined) n++;
      return n;
    })();
    const big = "Once upon a time there was a pool. ".repeat(12_000); // ≈ 420 KB: under the cap, far over the context
    const answers = await Promise.all([
      ...Array.from({ length: 3 }, () => postJson(`${server.url}/v1/completions`, { model: "m", prompt: big, max_tokens: 1 })),
      postJson(`${server.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: big }], max_tokens: 1 }),
    ]);
    for (const a of answers) {
      assert.equal(a.status, 400, JSON.stringify(a.json));
      assert.equal(a.json.error.code, "context_length_exceeded");
    }
    assert.ok((await chunks) >= 40, "the stream delivered every token");
    // The stream's prompt and the four large ones: none was tokenized on the main thread.
    assert.equal(server.tokenizerPool!.tasksOffThread - offBefore, 5);
  });

  it("prompt text over server.maxPromptBytes is 413 prompt_too_large, naming both sizes, before any tokenizing", async () => {
    const offBefore = server.tokenizerPool!.tasksOffThread;
    const huge = "x".repeat(500_001);
    const c = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: huge, max_tokens: 1 });
    assert.equal(c.status, 413);
    assert.deepEqual({ ...c.json.error, message: undefined }, { message: undefined, type: "invalid_request_error", param: "prompt", code: "prompt_too_large" });
    assert.match(c.json.error.message, /500001 bytes.*500000 bytes.*server\.maxPromptBytes/);
    // Spread over messages, multi-byte characters counted as UTF-8 bytes.
    const half = "é".repeat(125_001); // 250,002 bytes
    const chat = await postJson(`${server.url}/v1/chat/completions`, {
      model: "m",
      messages: [
        { role: "user", content: half },
        { role: "assistant", content: half },
      ],
    });
    assert.equal(chat.status, 413);
    assert.equal(chat.json.error.param, "messages");
    assert.equal(server.tokenizerPool!.tasksOffThread, offBefore, "nothing was tokenized");
  });

  it("a body over server.bodyLimitBytes is 413 request_too_large, naming the limit", async () => {
    const r = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: "x".repeat(1_100_000) });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, "request_too_large");
    assert.match(r.json.error.message, /1048576 bytes.*server\.bodyLimitBytes/);
  });
});
