import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestSpec } from "../core/types.ts";
import { MB, model } from "./testing/fakeDevice.ts";
import { Scheduler } from "./Scheduler.ts";

// Two devices with room for one 60 MB model each.
const devices = [
  { id: "d0", memoryBytes: 70 * MB },
  { id: "d1", memoryBytes: 70 * MB },
];
const req = (id: string, modelId: string, arrivalMs: number): RequestSpec => ({ id, modelId, arrivalMs, promptTokens: 16, maxOutputTokens: 4 });

describe("idle devices with nothing to take", () => {
  it("token: a device falls asleep while the waiting work is another device's, and wakes for a model no device holds", () => {
    const s = new Scheduler([model("a"), model("b")], devices, { policy: "token" });
    s.submit(req("r1", "a", 0), 0);
    assert.equal(s.plan("d0", 0)?.kind, "load");
    // a is d0's now and its request is young: d1 takes nothing, and may be skipped.
    assert.equal(s.plan("d1", 0), null);
    assert.equal(s.mayTakeWork("d1", 0), false);
    s.submit(req("r2", "a", 10), 10);
    assert.equal(s.mayTakeWork("d1", 10), false);
    assert.equal(s.plan("d1", 10), null);
    // A request for a model held nowhere: d1 may take it, and does.
    s.submit(req("r3", "b", 20), 20);
    assert.equal(s.mayTakeWork("d1", 20), true);
    assert.deepEqual(s.plan("d1", 20), { kind: "load", deviceId: "d1", modelId: "b", evict: [], release: [] });
    assert.equal(s.mayTakeWork("d1", 20), true, "a device planned the long way is awake");
  });

  it("token: an asleep device that holds a model wakes when a request for it waits", () => {
    const s = new Scheduler([model("a"), model("b")], devices, { policy: "token" });
    s.submit(req("r1", "b", 0), 0);
    assert.equal(s.plan("d1", 0)?.kind, "load");
    s.onCommandDone("d1", { durationMs: 200 }, 200);
    // Run r1 to its end on d1.
    for (let t = 200, cmd = s.plan("d1", t); cmd; cmd = s.plan("d1", t)) {
      t += 10;
      s.onCommandDone("d1", { durationMs: 10 }, t);
    }
    assert.equal(s.activeRequestCount, 0);
    assert.equal(s.mayTakeWork("d1", 1000), false);
    s.submit(req("r2", "b", 1000), 1000);
    assert.equal(s.mayTakeWork("d1", 1000), true);
    assert.equal(s.plan("d1", 1000)?.kind, "prefill");
  });

  it("request: the device holding nothing wakes once the queue has waited long enough for a second copy", () => {
    const s = new Scheduler([model("a"), model("b")], devices, { policy: "request", scaleOutWaitFraction: 0.75 });
    s.submit(req("r1", "a", 0), 0);
    assert.equal(s.plan("d0", 0)?.kind, "load");
    assert.equal(s.plan("d1", 0), null);
    assert.equal(s.mayTakeWork("d1", 0), false);
    // 0.75 of the 2 s TTFT target: from 1.5 s on, d1 is asked again.
    assert.equal(s.mayTakeWork("d1", 1499), false);
    assert.equal(s.mayTakeWork("d1", 1500), true);
  });

  it("a device reserved for a model is never answered without its policy", () => {
    const s = new Scheduler(
      [model("a")],
      [
        { ...devices[0]!, allowedModels: ["a"] },
        { ...devices[1]!, allowedModels: ["a"] },
      ],
      { policy: "request" },
    );
    s.submit(req("r1", "a", 0), 0);
    s.submit(req("r2", "a", 0), 0);
    assert.equal(s.plan("d0", 0)?.kind, "load");
    // Dedicated placement: d1 loads its model for the waiting request, whoever else holds it.
    assert.equal(s.mayTakeWork("d1", 0), true);
    assert.equal(s.plan("d1", 0)?.kind, "load");
  });
});
