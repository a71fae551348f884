// A real trained model (stories260K) through the whole server: text, stop strings, streaming.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { STORIES, startTestServer } from "./helpers.ts";

const STORY = ", there was a little girl named Lily. She loved to play outside in the park.";

describe("stories260K through Pitcher", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  before(async () => {
    server = await startTestServer({ models: [{ id: "stories", path: STORIES }], devices: { count: 1 } });
  });
  after(async () => server.shutdown());

  it("greedy completion continues 'Once upon a time' with the model's story", async () => {
    const r = await server.client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
    assert.ok(r.choices[0]!.text.startsWith(STORY), r.choices[0]!.text);
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.equal(r.usage!.completion_tokens, 40);
    assert.equal(r.usage!.prompt_tokens, 5);
  });

  it("cuts the text at a stop string", async () => {
    const r = await server.client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop: ["."] });
    assert.equal(r.choices[0]!.text, ", there was a little girl named Lily");
    assert.equal(r.choices[0]!.finish_reason, "stop");
  });

  it("cuts at a stop string that spans tokens, streamed or not, identically", async () => {
    const stop = ["play outside"];
    const plain = await server.client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop });
    assert.equal(plain.choices[0]!.text, ", there was a little girl named Lily. She loved to ");
    const stream = await server.client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, plain.choices[0]!.text);
    assert.equal(finish, "stop");
  });

  it("serves chat on a model without a chat template through the plain fallback", async () => {
    const r = await server.client.chat.completions.create({ model: "stories", messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 12, temperature: 0 });
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.equal(typeof r.choices[0]!.message.content, "string");
    assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 12);
  });
});
