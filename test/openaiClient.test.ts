// The official openai client against a running server on the embedded stand-in catalog.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { CompletionUsage } from "openai/resources/completions";
import { STAND_IN_IDS, startTestServer } from "./helpers.ts";

describe("openai client against the default catalog", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  before(async () => {
    server = await startTestServer({ devices: { count: 2 } });
  });
  after(async () => server.shutdown());

  it("lists every catalog model, marked as stand-ins", async () => {
    const list = await server.client.models.list();
    assert.deepEqual(list.data.map((m) => m.id).sort(), [...STAND_IN_IDS].sort());
    for (const m of list.data) assert.equal((m as unknown as { meta: { stand_in: boolean } }).meta.stand_in, true);
    const meta = list.data.map((m) => (m as unknown as { meta: { file_type: string; experts?: number } }).meta);
    const shapes = new Set(meta.map((m) => `${m.experts ? "moe" : "dense"}/${m.file_type}`));
    assert.ok(shapes.size >= 3, `shapes: ${[...shapes]}`);
  });

  it("answers chat completions, not streamed", async () => {
    const r = await server.client.chat.completions.create({
      model: "llama-5m-q8",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hello there" },
      ],
      max_tokens: 7,
      temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.ok(r.choices[0]!.message.content!.length > 0);
    assert.equal(r.usage!.completion_tokens, 7);
    assert.equal(r.choices[0]!.finish_reason, "length");
  });

  it("streams chat completions ending with usage when asked", async () => {
    const stream = await server.client.chat.completions.create({
      model: "moe-43m-a12m-q8",
      messages: [{ role: "user", content: "Stream please" }],
      max_completion_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: CompletionUsage | undefined;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      assert.equal(c.object, "chat.completion.chunk");
      text += c.choices[0]?.delta?.content ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
      if (c.usage) usage = c.usage;
    }
    assert.ok(chunks >= 3);
    assert.equal(finish, "length");
    assert.equal(usage!.completion_tokens, 6);
    // The same request, not streamed, gives the same text (greedy).
    const r = await server.client.chat.completions.create({
      model: "moe-43m-a12m-q8",
      messages: [{ role: "user", content: "Stream please" }],
      max_completion_tokens: 6,
      temperature: 0,
    });
    assert.equal(text, r.choices[0]!.message.content);
  });

  it("streams text completions", async () => {
    const stream = await server.client.completions.create({ model: "llama-16m-f16", prompt: "A pool of", max_tokens: 5, temperature: 0, stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    const r = await server.client.completions.create({ model: "llama-16m-f16", prompt: "A pool of", max_tokens: 5, temperature: 0 });
    assert.equal(text, r.choices[0]!.text);
  });

  it("repeats sampled output for the same seed and varies it across seeds", async () => {
    const ask = (seed: number) => server.client.completions.create({ model: "llama-5m-f16", prompt: "Sample", max_tokens: 12, temperature: 1.0, top_p: 0.95, seed });
    const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
    assert.notEqual(a.choices[0]!.text, c.choices[0]!.text);
  });

  it("varies sampled output across identical requests that name no seed, sent at once", async () => {
    // Random weights over a large vocabulary: two 12-token samples from different seeds are
    // equal with a probability far below any other failure of this suite.
    const ask = () => server.client.completions.create({ model: "llama-5m-f16", prompt: "Sample", max_tokens: 12, temperature: 1.0 });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.notEqual(a.choices[0]!.text, b.choices[0]!.text);
  });
});
