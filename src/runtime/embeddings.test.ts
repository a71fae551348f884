// Embeddings through the serving facade and the pool, on fake devices and the real
// scheduler: each input is a prefill-only request, scheduled and pooled like generation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PitcherError } from "../core/errors.ts";
import { FakeDevice, hashedEmbedding, hashedToken } from "../../test/fakes/FakeDevice.ts";
import { FakeClock } from "../../test/fakes/FakeClock.ts";
import { FakeHostTier } from "../../test/fakes/FakeHostTier.ts";
import { fakeCodec, fakeCodecs } from "../../test/fakes/fakeCodecs.ts";
import { servedModel } from "../../test/fakes/servedModel.ts";
import { Scheduler } from "../scheduler/Scheduler.ts";
import { Pool, type CommandRecord, type RequestOutcome } from "./Pool.ts";
import { PoolServing } from "./Serving.ts";

const MB = 1e6;

/** A generating model "gen" and an embedding model "emb", 60 MB each; `memoryBytes` decides whether both fit a device. */
async function setup(memoryBytes = 200 * MB) {
  const clock = new FakeClock();
  const models = [servedModel("gen"), servedModel("emb", { contextTokens: 64 }, { embedding: true })];
  const dev = new FakeDevice("dev0", { hostTier: new FakeHostTier(), clock, models });
  await dev.start();
  const scheduler = new Scheduler(
    models.map((m) => m.profile),
    [{ id: dev.id, memoryBytes }],
    { admissionTtftFactor: 0, prefillChunkTokens: 4 },
  );
  const pool = new Pool(scheduler, [dev], new Map(models.map((m) => [m.id, m])), fakeCodecs, { now: clock.now });
  const commands: CommandRecord[] = [];
  const outcomes: RequestOutcome[] = [];
  pool.on("command", (c) => commands.push(c));
  pool.on("outcome", (o) => outcomes.push(o));
  return { pool, dev, commands, outcomes, serving: new PoolServing(pool, fakeCodecs) };
}

const refused = (code: string) => (e: unknown) => e instanceof PitcherError && e.code === code;

describe("embeddings through the pool", () => {
  it("give each input the device's vector of its whole input, in order, prefilled in one command and never decoded", async () => {
    const { serving, commands, outcomes, pool } = await setup();
    const texts = ["the quick brown fox jumps over the lazy dog", "hello", "the quick brown fox jumps over the lazy dog"];
    const res = await serving.embed({ modelId: "emb", inputs: [...texts, [5, 6, 7]] });
    const tokens = [...texts.map((t) => fakeCodec.completionPrompt(t)), [5, 6, 7]];
    assert.deepEqual(
      res.vectors,
      tokens.map((t) => hashedEmbedding("emb", t)),
    );
    assert.deepEqual(res.vectors[0], res.vectors[2], "the same input, the same vector");
    assert.notDeepEqual(res.vectors[0], res.vectors[1]);
    assert.equal(
      res.promptTokens,
      tokens.reduce((n, t) => n + t.length, 0),
    );
    // Nine tokens with 4-token chunks: still one prefill per input, the whole input.
    const prefills = commands.filter((c) => c.kind === "prefill" && c.modelId === "emb");
    assert.equal(prefills.length, 4);
    assert.ok(!commands.some((c) => c.kind === "decode" && c.modelId === "emb"));
    // Each input is one pooled request with one output (its vector), timed like a first token.
    assert.equal(outcomes.length, 4);
    for (const o of outcomes) {
      assert.equal(o.reason, "length");
      assert.equal(o.tokenTimesMs.length, 1);
    }
    assert.equal(pool.scheduler.activeRequestCount, 0);
    assert.equal(pool.scheduler.snapshot().devices[0]!.kvBytes, 0);
  });

  it("pools with generation: an embedding model and a generating model share a device that holds one, and both requests complete", async () => {
    const { serving, commands, dev } = await setup(100 * MB);
    const gen = await serving.generate({ modelId: "gen", input: { kind: "completion", prompt: "one two three" }, maxTokens: 12, sampling: { temperature: 0 }, stop: [] });
    const emb = serving.embed({ modelId: "emb", inputs: ["four five six"] });
    const [g, e] = await Promise.all([gen.result, emb]);
    assert.equal(g.completionTokens, 12);
    assert.deepEqual(e.vectors, [hashedEmbedding("emb", fakeCodec.completionPrompt("four five six"))]);
    const loads = commands.filter((c) => c.kind === "load").map((c) => c.modelId);
    assert.ok(loads.includes("gen") && loads.includes("emb"), `both models loaded (${loads.join(", ")})`);
    assert.ok(
      commands.some((c) => c.evictModelIds.length > 0),
      "one model made room for the other",
    );
    // The generation's tokens are what the fake model says, preempted or not.
    assert.equal(g.text.trim().split(" ")[0], `t${hashedToken("gen", fakeCodec.completionPrompt("one two three"), { temperature: 0 }, 0)}`);
    assert.deepEqual(dev.sequences(), []);
  });

  it("refuses a model that does not embed, generation from an embedding model, empty and too long inputs, unknown tokens", async () => {
    const { serving } = await setup();
    assert.throws(() => serving.embed({ modelId: "nope", inputs: ["x"] }), refused("model_not_found"));
    assert.throws(() => serving.embed({ modelId: "gen", inputs: ["x"] }), refused("model_cannot_embed"));
    assert.throws(() => serving.generate({ modelId: "emb", input: { kind: "completion", prompt: "x" }, sampling: { temperature: 0 }, stop: [] }), refused("model_only_embeds"));
    assert.throws(() => serving.embed({ modelId: "emb", inputs: [] }), refused("invalid_request"));
    assert.throws(() => serving.embed({ modelId: "emb", inputs: ["x", ""] }), refused("invalid_request"));
    assert.throws(() => serving.embed({ modelId: "emb", inputs: [Array.from({ length: 64 }, () => 3)] }), refused("context_length_exceeded"));
    assert.throws(() => serving.embed({ modelId: "emb", inputs: [[1, 5000]] }), refused("invalid_request"));
  });

  it("a client that goes away cancels every input; nothing is left behind", async () => {
    const { serving, dev, pool } = await setup();
    const hold = dev.hold("load", { modelId: "emb" });
    const abort = new AbortController();
    const pending = serving.embed({ modelId: "emb", inputs: ["a b", "c d", "e f"], signal: abort.signal });
    await hold.reached;
    abort.abort();
    hold.release();
    await assert.rejects(pending, refused("cancelled"));
    assert.equal(pool.activeRequests, 0);
    assert.equal(pool.scheduler.activeRequestCount, 0);
  });
});
