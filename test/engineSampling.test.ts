// Sampling options on the engine (stories260K, two worker processes sharing a host KV tier):
// logit bias, penalties, top-k / min-p and logprobs do what they say, deterministically, and
// a penalized, biased, seeded request parked on one device and resumed on the other returns
// exactly the tokens it returns alone.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DecodeItem, SampledToken, Sampling } from "../src/core/devicePort.ts";
import { EngineDevice } from "../src/engine/EngineDevice.ts";
import { HostKvTier } from "../src/engine/HostKvTier.ts";
import { servedModel } from "./fakes/servedModel.ts";
import { STORIES } from "./helpers.ts";

const m = "m";
const prompt = [1, 403, 407, 261, 378, 284, 266, 300, 1, 19, 99, 30];

describe("sampling options on the engine (stories260K)", () => {
  const hostKv = HostKvTier.temporary("pitcher-sampling-");
  const file = { path: STORIES, fingerprint: "stories260K", vocabularySize: 512 };
  const options = { threads: 1, gpu: false as const, hostKv, models: [servedModel(m, { contextTokens: 512, maxBatch: 2 }, file)], prefillChunkTokens: 64 };
  const a = new EngineDevice("a", options);
  const b = new EngineDevice("b", options);
  let n = 0;
  before(async () => {
    await Promise.all([a.start(), b.start()]);
    await a.load(m, [], []);
    await b.load(m, [], []);
  });
  after(async () => {
    await a.stop();
    await b.stop();
    hostKv.close();
  });

  /** Prefill, then decode `steps` (handing the device the output so far, as the pool does). */
  async function run(sampling: Sampling, steps: number, on = a, id = `r${n++}`, release = true): Promise<{ id: string; tokens: SampledToken[] }> {
    const first = (await on.prefill({ modelId: m, requestId: id, tokens: prompt, final: true, sampling }, [])).first!;
    const tokens = [first, ...(await decodeFrom(on, id, sampling, [first.token], steps))];
    if (release) await on.release([id]);
    return { id, tokens };
  }

  async function decodeFrom(on: EngineDevice, id: string, sampling: Sampling, output: number[], steps: number): Promise<SampledToken[]> {
    const out: SampledToken[] = [];
    const item: DecodeItem = { requestId: id, token: output.at(-1)!, tokenIndex: output.length, sampling, output: [...output] };
    await on.decode({ modelId: m, items: [item], steps, progressEveryMs: 0 }, [], (t) => out.push(...t));
    return out;
  }

  const ids = (r: { tokens: SampledToken[] }) => r.tokens.map((t) => t.token);

  it("logit_bias -100 bans the greedy token; +100 forces a token at every step", async () => {
    const greedy = ids(await run({ temperature: 0 }, 7));
    const banned = ids(await run({ temperature: 0, logitBias: [[greedy[0]!, -100]] }, 7));
    assert.ok(!banned.includes(greedy[0]!), `token ${greedy[0]} never drawn: ${banned}`);
    assert.deepEqual(ids(await run({ temperature: 0, logitBias: [[greedy[0]!, -100]] }, 7)), banned, "deterministic");
    const forced = ids(await run({ temperature: 0.8, seed: 3, logitBias: [[300, 100]] }, 7));
    assert.deepEqual(forced, Array(8).fill(300));
  });

  it("penalties change greedy output deterministically; 0 and repeat 1 change nothing", async () => {
    const greedy = ids(await run({ temperature: 0 }, 31));
    assert.deepEqual(ids(await run({ temperature: 0, presencePenalty: 0, frequencyPenalty: 0, repeatPenalty: 1 }, 31)), greedy);
    for (const p of [{ frequencyPenalty: 2 }, { presencePenalty: 2 }, { repeatPenalty: 2 }]) {
      const once = ids(await run({ temperature: 0, ...p }, 31));
      assert.notDeepEqual(once, greedy, JSON.stringify(p));
      assert.deepEqual(ids(await run({ temperature: 0, ...p }, 31)), once, `${JSON.stringify(p)} repeats`);
    }
    // A strong frequency penalty makes a repeated token rarer than in the greedy output.
    const distinct = (t: number[]) => new Set(t).size;
    assert.ok(distinct(ids(await run({ temperature: 0, frequencyPenalty: 2 }, 31))) > distinct(greedy));
  });

  it("top_k 1 and min_p 1 sample what greedy picks", async () => {
    const greedy = ids(await run({ temperature: 0 }, 15));
    assert.deepEqual(ids(await run({ temperature: 1.5, seed: 9, topK: 1 }, 15)), greedy);
    assert.deepEqual(ids(await run({ temperature: 1.5, seed: 9, minP: 1 }, 15)), greedy);
    assert.notDeepEqual(ids(await run({ temperature: 1.5, seed: 9, topK: 0 }, 15)), greedy, "top_k 0 keeps every token");
  });

  it("logprobs: at most 0, the top sorted, the chosen token's equal to its entry among the top; greedy picks the top", async () => {
    for (const sampling of [
      { temperature: 0, logprobs: 5 },
      { temperature: 1, seed: 4, logprobs: 5 },
      { temperature: 0.7, seed: 4, topK: 10, logprobs: 3, frequencyPenalty: 0.5 },
    ]) {
      const r = await run(sampling, 11);
      for (const t of r.tokens) {
        const l = t.logprobs!;
        assert.ok(l, "every token carries logprobs");
        // Of the distribution the token was drawn from: top-k / top-p may leave fewer candidates.
        if (sampling.temperature === 0) assert.equal(l.top.length, sampling.logprobs);
        else assert.ok(l.top.length >= 1 && l.top.length <= sampling.logprobs);
        assert.ok(l.logprob <= 0);
        for (const [i, x] of l.top.entries()) {
          assert.ok(x.logprob <= 0);
          if (i > 0) assert.ok(x.logprob <= l.top[i - 1]!.logprob, "most likely first");
        }
        const mine = l.top.find((x) => x.token === t.token);
        if (mine) assert.equal(mine.logprob, l.logprob);
        if (sampling.temperature === 0) assert.equal(l.top[0]!.token, t.token);
        assert.ok(l.top.reduce((s, x) => s + Math.exp(x.logprob), 0) <= 1 + 1e-4);
      }
    }
    // Greedy without alternatives skips the sort of the vocabulary: the same logprobs.
    const none = await run({ temperature: 0, logprobs: 0 }, 3);
    const five = await run({ temperature: 0, logprobs: 5 }, 3);
    for (const [i, t] of none.tokens.entries()) {
      assert.deepEqual(t.logprobs!.top, []);
      assert.ok(Math.abs(t.logprobs!.logprob - five.tokens[i]!.logprobs!.logprob) < 1e-4);
    }
    const plain = await run({ temperature: 0 }, 3);
    for (const t of plain.tokens) assert.equal(t.logprobs, undefined, "not asked, not computed");
  });

  it("a penalized, biased, seeded request parked on one device and resumed on the other samples exactly as alone", async () => {
    const sampling: Sampling = {
      temperature: 0.9,
      seed: 11,
      presencePenalty: 0.8,
      frequencyPenalty: 0.6,
      repeatPenalty: 1.3,
      topK: 20,
      minP: 0.02,
      logitBias: [
        [300, 2],
        [19, -100],
      ],
    };
    const alone = ids(await run(sampling, 23));
    const moved = await run(sampling, 7, a, "moved", false);
    const out = ids(moved);
    await a.swapOut(m, ["moved"], []);
    // The model is dropped and loaded again on the device that resumes it.
    await b.evict([m], []);
    await b.load(m, [], []);
    const back = await b.swapIn(m, ["moved"], []);
    assert.equal(back.failed, undefined);
    out.push(...(await decodeFrom(b, "moved", sampling, out, 16)).map((t) => t.token));
    await b.release(["moved"]);
    assert.deepEqual(out, alone);
    assert.notDeepEqual(alone, ids(await run({ ...sampling, presencePenalty: 0, frequencyPenalty: 0, repeatPenalty: 1 }, 23)), "the penalties mattered");
  });

  it("a slot's kept sampler draws as a fresh one: the same seeded first token, request after request on one slot", async () => {
    // Each request's first token has the seed itself; the slot's sampler last drew with that
    // same seed for the request before, so its generator must be started afresh, not advanced.
    const firsts: number[] = [];
    for (let i = 0; i < 6; i++) firsts.push((await run({ temperature: 2, seed: 5 }, 0)).tokens[0]!.token);
    assert.deepEqual(firsts, Array(6).fill(firsts[0]));
    const penalized: number[][] = [];
    for (let i = 0; i < 3; i++) penalized.push(ids(await run({ temperature: 0, presencePenalty: 1.5, repeatPenalty: 1.4 }, 9)));
    assert.deepEqual(penalized[1], penalized[0], "another request's penalty state is not carried into the slot");
    assert.deepEqual(penalized[2], penalized[0]);
  });
});
