// Load shedding in virtual time: the late-wait cap ends requests that waited too long without
// starting, and admission refuses what a saturated pool cannot serve in time while admitting
// everything at normal load.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestSpec } from "../core/types.ts";
import { drive, MB, model, workload } from "./testing/fakeDevice.ts";
import { type ExpiredRequest, Scheduler } from "./Scheduler.ts";

const oneDevice = [{ id: "d0", memoryBytes: 130 * MB }];
/** Six long requests of one model with one slot, all at once: about 1.3 s each on the fake device. */
const queue: RequestSpec[] = Array.from({ length: 6 }, (_, i) => ({ id: `r${i}`, modelId: "a", arrivalMs: 0, promptTokens: 64, maxOutputTokens: 400 }));

describe("the late-wait cap", () => {
  it("ends the requests still waiting half a TTFT target past their deadline, with an error and a retry time", () => {
    const s = new Scheduler([model("a", { maxBatch: 1 })], oneDevice, { policy: "request", lateWaitCapFactor: 0.5 });
    const log = drive(s, queue);
    // r0 runs at once, r1 starts at ≈1.3 s (on time), r2 at ≈2.6 s (late, but before the cap
    // at 3 s); the rest would have started at ≈3.9 s and later.
    const byId = new Map(log.finished.map((f) => [f.requestId, f]));
    assert.equal(byId.size, 6, "every request ended exactly once");
    assert.equal(log.finished.length, 6);
    for (const id of ["r0", "r1", "r2"]) assert.equal(byId.get(id)!.reason, "length");
    for (const id of ["r3", "r4", "r5"]) {
      const f = byId.get(id) as ExpiredRequest;
      assert.equal(f.reason, "error");
      assert.match(f.error!, /waited 30\d\d ms for a device without starting, past its TTFT target of 2000 ms/);
      assert.ok(f.retryAfterMs >= 1000);
      assert.ok(!log.commands.some((c) => c.kind === "prefill" && c.requestId === id), `${id} never took the device`);
    }
    assert.equal(s.activeRequestCount, 0);
    assert.equal(s.snapshot().devices[0]!.kvBytes, 0);
  });

  it("is off by default: every request waits its turn and runs to its length", () => {
    const s = new Scheduler([model("a", { maxBatch: 1 })], oneDevice, { policy: "request" });
    const log = drive(s, queue);
    assert.deepEqual(
      log.finished.map((f) => f.reason),
      Array(6).fill("length"),
    );
  });

  for (const policy of ["token", "request"]) {
    it(`${policy}: never ends a request a device has started, however late it is`, () => {
      const s = new Scheduler([model("a", { maxBatch: 2 }), model("b", { maxBatch: 2 })], oneDevice, { policy, lateWaitCapFactor: 0 });
      const reqs = workload(40, ["a", "b"], 20, 64, 200);
      const log = drive(s, reqs);
      assert.equal(new Set(log.finished.map((f) => f.requestId)).size, 40);
      const started = new Set(log.commands.flatMap((c) => (c.kind === "prefill" ? [c.requestId] : [])));
      const expired = log.finished.filter((f) => f.reason === "error");
      assert.ok(expired.length > 0, "an overloaded pool shed some requests");
      for (const f of expired) assert.ok(!started.has(f.requestId), `${f.requestId} was started, then ended`);
      for (const f of log.finished) if (f.reason !== "error") assert.equal(log.tokens.get(f.requestId), 200);
      assert.equal(s.activeRequestCount, 0);
    });
  }
});

describe("admission", () => {
  it("admits every request at normal load", () => {
    const s = new Scheduler([model("a"), model("b")], oneDevice, { admissionTtftFactor: 0.5 });
    // drive() asserts that every submission is accepted.
    const log = drive(s, workload(30, ["a", "b"], 300, 64, 32));
    assert.equal(log.finished.filter((f) => f.reason === "length").length, 30);
  });

  it("refuses, with a retry time, what a saturated pool cannot start in time", () => {
    const s = new Scheduler([model("a")], oneDevice, { admissionTtftFactor: 0.5 });
    const answers = Array.from({ length: 40 }, (_, i) => s.submit({ id: `r${i}`, modelId: "a", arrivalMs: 0, promptTokens: 64, maxOutputTokens: 64 }, 0));
    const accepted = answers.filter((a) => a.accepted).length;
    assert.ok(accepted >= 4, `a batch's worth is admitted (${accepted})`);
    assert.ok(accepted < 40, "the rest is refused");
    // Nothing ran in between, so once the pool refuses it keeps refusing.
    assert.ok(answers.slice(0, accepted).every((a) => a.accepted));
    for (const a of answers.slice(accepted)) {
      assert.equal(a.accepted, false);
      if (a.accepted) continue;
      assert.ok(a.retryAfterMs > 0);
      assert.match(a.reason, /predicted wait \d+ ms exceeds the TTFT target/);
    }
    assert.equal(s.activeRequestCount, accepted);
  });

  it("counts no work for requests that have already missed their SLO", () => {
    const s = new Scheduler([model("a")], oneDevice, { admissionTtftFactor: 0.5 });
    for (let i = 0; i < 40; i++) s.submit({ id: `old${i}`, modelId: "a", arrivalMs: 0, promptTokens: 64, maxOutputTokens: 64 }, 0);
    // Ten seconds later every one of them is past its deadline: a new request is served first.
    assert.deepEqual(s.submit({ id: "new", modelId: "a", arrivalMs: 10_000, promptTokens: 64, maxOutputTokens: 64 }, 10_000), { accepted: true });
  });
});
