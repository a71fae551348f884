import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatLogprobs, completionLogprobs } from "./logprobs.ts";

const named = (token: string, logprob: number) => ({ token, bytes: [...Buffer.from(token, "utf8")], logprob });
const tokens = [
  { ...named("Hé", -0.5), top: [named("Hé", -0.5), named("__proto__", -1)] },
  { ...named(" there", Number.NEGATIVE_INFINITY), top: [named(" you", -0.1)] },
];

describe("logprobs in OpenAI's shapes", () => {
  it("chat: content[] with token, logprob, bytes and top_logprobs; an impossible token is -9999", () => {
    const l = chatLogprobs(tokens);
    assert.equal(l.refusal, null);
    assert.deepEqual(l.content[0], { token: "Hé", logprob: -0.5, bytes: [72, 195, 169], top_logprobs: [named("Hé", -0.5), named("__proto__", -1)] });
    assert.equal(l.content[1]!.logprob, -9999);
  });

  it("completions: parallel lists, the sampled token always among top_logprobs, offsets continuing from where a chunk starts", () => {
    const l = completionLogprobs(tokens, 10);
    assert.deepEqual(l.tokens, ["Hé", " there"]);
    assert.deepEqual(l.token_logprobs, [-0.5, -9999]);
    assert.deepEqual(l.text_offset, [10, 12]);
    assert.equal(JSON.stringify(l.top_logprobs), '[{"Hé":-0.5,"__proto__":-1},{" you":-0.1," there":-9999}]');
    assert.equal(Object.keys(l.top_logprobs[0]!).length, 2, "a token named __proto__ is a key like any other");
  });
});
