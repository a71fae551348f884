// The official openai client against a running server on the tiny real model stories260K:
// sampling options (penalties, top_k, min_p, logit_bias, seed), logprobs in the shapes of
// chat and of completions, and n choices, streamed and not.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type OpenAI from "openai";
import { postJson, STORIES, startTestServer } from "./helpers.ts";

/** llama.cpp's extensions, which the openai client passes through untyped. */
type Extensions = { top_k?: number; min_p?: number; repeat_penalty?: number };

describe("openai client: sampling options, logprobs and n", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: OpenAI;
  before(async () => {
    server = await startTestServer({ devices: { count: 2 }, models: [{ id: "stories", path: STORIES }] });
    client = server.client;
  });
  after(async () => server.shutdown());

  const prompt = "Once upon a time, there was a little";
  const complete = async (extra: Partial<OpenAI.CompletionCreateParamsNonStreaming> & Extensions = {}) =>
    client.completions.create({ model: "stories", prompt, max_tokens: 24, temperature: 0, ...extra } as OpenAI.CompletionCreateParamsNonStreaming);
  const text = async (extra: Partial<OpenAI.CompletionCreateParamsNonStreaming> & Extensions = {}) => (await complete(extra)).choices[0]!.text;

  it("presence, frequency and repeat penalties change greedy text, and repeat", async () => {
    const greedy = await text();
    for (const p of [{ presence_penalty: 2 }, { frequency_penalty: 2 }, { repeat_penalty: 1.8 }]) {
      const once = await text(p);
      assert.notEqual(once, greedy, JSON.stringify(p));
      assert.equal(await text(p), once, `${JSON.stringify(p)} repeats`);
    }
  });

  it("top_k 1 and min_p 1 sample the greedy text at temperature 1", async () => {
    const greedy = await text();
    assert.equal(await text({ temperature: 1, top_k: 1 }), greedy);
    assert.equal(await text({ temperature: 1, min_p: 1 }), greedy);
  });

  it("logit_bias +100 forces a token, -100 bans it", async () => {
    const forced = await complete({ logit_bias: { "300": 100 }, logprobs: 0, max_tokens: 6 });
    const tokens = forced.choices[0]!.logprobs!.tokens!;
    assert.equal(tokens.length, 6);
    // (The first token's text starts the answer: it has no leading space.)
    assert.ok(
      tokens.slice(1).every((t) => t === tokens[1]),
      `one token over and over: ${JSON.stringify(tokens)}`,
    );
    const banned = await complete({ logit_bias: { "300": -100 }, logprobs: 20 });
    const tops = banned.choices[0]!.logprobs!.top_logprobs!.slice(1);
    for (const top of tops) assert.ok(!(tokens[1]! in top) || top[tokens[1]!]! <= -9999, "the banned token is never a candidate");
  });

  it("completions logprobs: tokens, token_logprobs, top_logprobs and text_offset, not streamed and streamed", async () => {
    const r = await complete({ logprobs: 3 });
    const l = r.choices[0]!.logprobs!;
    assert.equal(l.tokens!.length, r.usage!.completion_tokens);
    assert.equal(l.tokens!.join(""), r.choices[0]!.text);
    assert.deepEqual(
      l.text_offset,
      l.tokens!.map((_, i) => l.tokens!.slice(0, i).join("").length),
    );
    for (const [i, lp] of l.token_logprobs!.entries()) {
      assert.ok(lp <= 0);
      const top = l.top_logprobs![i]!;
      assert.equal(top[l.tokens![i]!], lp, "the sampled token is among top_logprobs, with its logprob");
      assert.ok(Object.keys(top).length >= 3 && Object.keys(top).length <= 4);
      assert.equal(Math.max(...Object.values(top)), lp, "greedy: the sampled token is the most likely");
    }
    const chunks = await client.completions.create({ model: "stories", prompt, max_tokens: 24, temperature: 0, logprobs: 3, stream: true });
    const streamed: string[] = [];
    const offsets: number[] = [];
    for await (const c of chunks) {
      const cl = c.choices[0]!.logprobs;
      if (cl) {
        streamed.push(...cl.tokens!);
        offsets.push(...cl.text_offset!);
      }
    }
    assert.deepEqual(streamed, l.tokens);
    assert.deepEqual(offsets, l.text_offset);
  });

  it("chat logprobs: content[] with token, logprob, bytes and sorted top_logprobs, not streamed and streamed", async () => {
    const ask = { model: "stories", messages: [{ role: "user" as const, content: "Tell me a story" }], max_tokens: 12, temperature: 0.8, seed: 5, logprobs: true, top_logprobs: 4 };
    const r = await client.chat.completions.create(ask);
    const content = r.choices[0]!.logprobs!.content!;
    assert.equal(content.length, r.usage!.completion_tokens - (r.choices[0]!.finish_reason === "stop" ? 1 : 0));
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
      assert.ok(t.top_logprobs.length >= 1 && t.top_logprobs.length <= 4);
      for (let i = 1; i < t.top_logprobs.length; i++) assert.ok(t.top_logprobs[i]!.logprob <= t.top_logprobs[i - 1]!.logprob);
      const mine = t.top_logprobs.find((x) => x.token === t.token);
      if (mine) assert.equal(mine.logprob, t.logprob);
    }
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    const streamed: { token: string; logprob: number }[] = [];
    for await (const c of stream) for (const t of c.choices[0]?.logprobs?.content ?? []) streamed.push({ token: t.token, logprob: t.logprob });
    assert.deepEqual(
      streamed,
      content.map((t) => ({ token: t.token, logprob: t.logprob })),
    );
    const { top_logprobs: _, ...withoutTop } = ask;
    const plain = await client.chat.completions.create({ ...withoutTop, logprobs: false });
    assert.equal(plain.choices[0]!.logprobs, null);
  });

  it("n choices: each its own sample, seeded ones repeat, usage counts the prompt once; streamed chunks carry index", async () => {
    const one = await complete({ temperature: 1, max_tokens: 16 });
    const r = await complete({ n: 3, temperature: 1, max_tokens: 16 });
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.equal(new Set(r.choices.map((c) => c.text)).size, 3, "unseeded choices differ");
    assert.equal(r.usage!.prompt_tokens, one.usage!.prompt_tokens);
    assert.equal(r.usage!.completion_tokens, 48);
    const seeded = await complete({ n: 2, temperature: 1, seed: 42, max_tokens: 16 });
    assert.notEqual(seeded.choices[0]!.text, seeded.choices[1]!.text);
    const again = await complete({ n: 2, temperature: 1, seed: 42, max_tokens: 16 });
    assert.deepEqual(
      again.choices.map((c) => c.text),
      seeded.choices.map((c) => c.text),
    );

    const stream = await client.chat.completions.create({
      model: "stories",
      messages: [{ role: "user", content: "Hi" }],
      n: 2,
      max_tokens: 8,
      temperature: 1,
      seed: 42,
      stream: true,
      stream_options: { include_usage: true },
    });
    const texts = ["", ""];
    const finished: number[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      for (const ch of c.choices) {
        texts[ch.index] += ch.delta.content ?? "";
        if (ch.finish_reason) finished.push(ch.index);
      }
      if (c.usage) usage = c.usage;
    }
    assert.deepEqual(finished.sort(), [0, 1]);
    const whole = await client.chat.completions.create({ model: "stories", messages: [{ role: "user", content: "Hi" }], n: 2, max_tokens: 8, temperature: 1, seed: 42 });
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.message.content),
    );
    assert.equal(usage!.completion_tokens, whole.usage!.completion_tokens);
  });

  it("without a seed, identical requests in parallel differ; with one they repeat", async () => {
    const ask = () => text({ temperature: 1, max_tokens: 16 });
    const unseeded = await Promise.all([ask(), ask(), ask(), ask()]);
    assert.ok(new Set(unseeded).size > 1, "unseeded samples differ");
    const seeded = await Promise.all([1, 2, 3].map(() => text({ temperature: 1, max_tokens: 16, seed: 7 })));
    assert.equal(new Set(seeded).size, 1, "seeded samples repeat");
  });

  it("refuses what it cannot do, naming the field", async () => {
    const url = `${server.url}/v1`;
    const cases: [string, Record<string, unknown>, string][] = [
      ["/completions", { prompt, best_of: 2 }, "best_of"],
      ["/completions", { prompt, n: 17 }, "n"],
      ["/completions", { prompt, logit_bias: { "99999": 5 } }, "logit_bias"],
      ["/completions", { prompt, logit_bias: { "3": 101 } }, "logit_bias.3"],
      ["/completions", { prompt, logprobs: 21 }, "logprobs"],
      ["/completions", { prompt, presence_penalty: 3 }, "presence_penalty"],
      ["/chat/completions", { messages: [{ role: "user", content: "x" }], top_logprobs: 2 }, "top_logprobs"],
    ];
    for (const [path, body, param] of cases) {
      const r = await postJson(`${url}${path}`, { model: "stories", ...body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.param, param, JSON.stringify(r.json));
    }
  });
});
