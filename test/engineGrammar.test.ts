// Constrained output on the engine's device (`Sampling.grammar`): two worker processes sharing
// a host KV tier, serving stories260K. A constrained request ends when its grammar is
// complete, and parked, moved to another device, or with its model evicted and reloaded, it
// samples exactly the tokens it samples alone (the worker rebuilds its grammar state).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Ajv } from "ajv";
import type { DevicePort, OutputGrammar, SampledToken, Sampling } from "../src/core/devicePort.ts";
import type { RequestId } from "../src/core/types.ts";
import { EngineDevice } from "../src/engine/EngineDevice.ts";
import { HostKvTier } from "../src/engine/HostKvTier.ts";
import { Tokenizers } from "../src/engine/Tokenizers.ts";
import { servedModel } from "./fakes/servedModel.ts";
import { STORIES } from "./helpers.ts";

const M = "stories";
const schema = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 24 },
    mood: { enum: ["happy", "sad"] },
    friends: { type: "array", items: { type: "string", maxLength: 10 }, maxItems: 3 },
    age: { type: "integer" },
  },
  required: ["name", "mood", "friends", "age"],
  additionalProperties: false,
};
const json: OutputGrammar = { kind: "json", schema };
const seeded = (seed: number, grammar: OutputGrammar = json): Sampling => ({ temperature: 1, seed, grammar });

describe("constrained output on the engine device (stories260K)", () => {
  const hostKv = HostKvTier.temporary("pitcher-grammar-");
  const models = [servedModel(M, { contextTokens: 512, maxBatch: 2 }, { path: STORIES, fingerprint: "stories260K", vocabularySize: 512 })];
  let tokenizers: Tokenizers;
  let ends: ReadonlySet<number>;
  let a: EngineDevice;
  let b: EngineDevice;
  let prompt: number[];
  before(async () => {
    tokenizers = await Tokenizers.load([{ id: M, path: STORIES }]);
    ends = tokenizers.get(M).endTokens;
    prompt = tokenizers.get(M).completionPrompt("Once upon a time");
    const options = { threads: 1, gpu: false as const, hostKv, models, prefillChunkTokens: 64, endTokens: () => ends };
    a = new EngineDevice("a", options);
    b = new EngineDevice("b", options);
    await Promise.all([a.start(), b.start()]);
    await a.load(M, [], []);
    await b.load(M, [], []);
  });
  after(async () => {
    await a.stop();
    await b.stop();
    hostKv.close();
    await tokenizers.dispose();
  });

  const text = (tokens: SampledToken[]) =>
    tokenizers.get(M).detokenize(
      tokens.filter((t) => !t.end).map((t) => t.token),
      [],
    );

  /** Decode one request from its last token until it ends (or `limit` steps). */
  const decode = async (d: DevicePort, id: RequestId, out: SampledToken[], sampling: Sampling, limit = 300) => {
    await d.decode({ modelId: M, steps: limit, progressEveryMs: 0, items: [{ requestId: id, token: out.at(-1)!.token, tokenIndex: out.length, sampling }] }, [], (tokens) =>
      out.push(...tokens),
    );
    return out;
  };
  const alone = async (id: RequestId, sampling: Sampling) => {
    const first = await a.prefill({ modelId: M, requestId: id, tokens: prompt, final: true, sampling }, []);
    const out = await decode(a, id, [first.first!], sampling);
    await a.release([id]);
    return out;
  };

  it("output is JSON valid against the schema, ended by an end token once complete", async () => {
    const validate = new Ajv().compile(schema);
    for (const seed of [1, 2, 3, 4]) {
      const out = await alone(`v${seed}`, seeded(seed));
      assert.equal(out.at(-1)!.end, true, "the request ends by itself");
      const value = JSON.parse(text(out));
      assert.ok(validate(value), `${JSON.stringify(value)}: ${JSON.stringify(validate.errors)}`);
    }
  });

  it("a GBNF grammar constrains the output the same way", async () => {
    const grammar: OutputGrammar = { kind: "gbnf", text: 'root ::= "The answer is " ("yes" | "no") "."' };
    for (const seed of [1, 2]) {
      const out = await alone(`g${seed}`, seeded(seed, grammar));
      assert.match(text(out), /^The answer is (yes|no)\.$/);
      assert.equal(out.at(-1)!.end, true);
    }
  });

  it("parked, moved to another device whose model was evicted and reloaded, and resumed: the tokens it samples alone", async () => {
    const ref = await alone("ref", seeded(11));
    assert.ok(ref.length > 12, `long enough to park mid-way (${ref.length} tokens)`);

    const first = await a.prefill({ modelId: M, requestId: "moved", tokens: prompt, final: true, sampling: seeded(11) }, []);
    const out: SampledToken[] = [first.first!];
    await a.decode({ modelId: M, steps: 5, progressEveryMs: 0, items: [{ requestId: "moved", token: first.first!.token, tokenIndex: 1, sampling: seeded(11) }] }, [], (t) =>
      out.push(...t),
    );
    await a.swapOut(M, ["moved"], []);
    // Its model leaves device b and comes back: nothing of the old grammar state can remain.
    await b.evict([M], []);
    await b.load(M, [], []);
    await b.swapIn(M, ["moved"], []);
    await b.decode({ modelId: M, steps: 4, progressEveryMs: 0, items: [{ requestId: "moved", token: out.at(-1)!.token, tokenIndex: out.length, sampling: seeded(11) }] }, [], (t) =>
      out.push(...t),
    );
    // And back to device a, batched with an unconstrained request this time.
    await b.swapOut(M, ["moved"], []);
    await a.swapIn(M, ["moved"], []);
    const plain = await a.prefill({ modelId: M, requestId: "plain", tokens: prompt, final: true, sampling: { temperature: 1, seed: 5 } }, []);
    await a.decode(
      {
        modelId: M,
        steps: 300,
        progressEveryMs: 0,
        items: [
          { requestId: "moved", token: out.at(-1)!.token, tokenIndex: out.length, sampling: seeded(11) },
          { requestId: "plain", token: plain.first!.token, tokenIndex: 1, sampling: { temperature: 1, seed: 5 } },
        ],
      },
      [],
      (t) => out.push(...t.filter((x) => x.requestId === "moved")),
    );
    await a.release(["moved", "plain"]);
    assert.deepEqual(
      out.map((t) => t.token),
      ref.map((t) => t.token),
    );
  });
});
