import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidRequestError, PitcherError } from "../core/errors.ts";
import { generateChoices } from "./choices.ts";
import { PoolServing, type ServingRequest } from "./Serving.ts";
import { answerWith, FakeServingPool, fakeCodecs, fakeModel, untilAborted } from "./testing/FakeServingPool.ts";

function setup() {
  const pool = new FakeServingPool([fakeModel("tiny", 64, 1000)]);
  let drawn = 100;
  return { pool, serving: new PoolServing(pool, fakeCodecs, { drawSeed: () => drawn++ }) };
}

const ask = (extra: Partial<ServingRequest> = {}): ServingRequest => ({
  modelId: "tiny",
  input: { kind: "completion", prompt: "abc" },
  sampling: { temperature: 1 },
  stop: [],
  ...extra,
});

describe("n choices", () => {
  it("schedules each choice as a request of its own; unseeded ones draw their own seeds, seeded ones count up from it", async () => {
    const { pool, serving } = setup();
    const unseeded = await generateChoices(serving, ask(), 3);
    assert.equal(new Set(unseeded.map((g) => g.id)).size, 3);
    assert.deepEqual(
      pool.calls.map((c) => c.sampling.seed),
      [100, 101, 102],
    );
    await generateChoices(serving, ask({ sampling: { temperature: 1, seed: 7 } }), 2);
    assert.deepEqual(
      pool.calls.slice(3).map((c) => c.sampling.seed),
      [7, 8],
    );
    for (const g of unseeded) assert.equal((await g.result).text, "Hello world");
  });

  it("one choice failing ends the others", async () => {
    const { pool, serving } = setup();
    let n = 0;
    pool.answer = (params) => (n++ === 1 ? Promise.reject(new PitcherError("boom", "device_failed", 500, "server_error")) : untilAborted(params));
    const choices = await generateChoices(serving, ask(), 3);
    const outcomes = await Promise.allSettled(choices.map((g) => g.result));
    assert.deepEqual(
      outcomes.map((o) => (o.status === "rejected" ? (o.reason as PitcherError).code : "ok")),
      ["cancelled", "device_failed", "cancelled"],
    );
  });

  it("the caller going away ends every choice", async () => {
    const { pool, serving } = setup();
    pool.answer = untilAborted;
    const abort = new AbortController();
    const choices = await generateChoices(serving, ask({ signal: abort.signal }), 2);
    abort.abort();
    for (const o of await Promise.allSettled(choices.map((g) => g.result))) assert.equal(o.status, "rejected");
  });

  it("a request refused before scheduling is refused at once, with nothing left running", async () => {
    const { pool, serving } = setup();
    pool.answer = answerWith(["x"]);
    await assert.rejects(generateChoices(serving, ask({ input: { kind: "completion", prompt: [1, 5000] } }), 2), InvalidRequestError);
    assert.equal(pool.calls.length, 0);
  });
});
