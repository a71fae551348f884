import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, RequestSpec } from "../core/types.ts";
import { drive, MB, model } from "./testing/fakeDevice.ts";
import { Scheduler, type SchedulerOptions } from "./Scheduler.ts";

/** Devices that loaded each model, in order of their loads. */
function loadsOf(commands: Command[], modelId: string): string[] {
  return commands.filter((c) => c.kind === "load" && c.modelId === modelId).map((c) => c.deviceId);
}

/** A burst of `n` requests of one model at time 0: more than one device's slots (4) hold. */
function burst(n: number, modelId = "a", maxOutputTokens = 100): RequestSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${modelId}${i}`, modelId, arrivalMs: i, promptTokens: 16, maxOutputTokens }));
}

const twoDevices = [
  { id: "d0", memoryBytes: 70 * MB },
  { id: "d1", memoryBytes: 70 * MB },
];

describe("request policy", () => {
  it("never evicts a model with running requests: a new model waits for the running one to finish", () => {
    const s = new Scheduler([model("a"), model("b")], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "request" });
    const reqs: RequestSpec[] = [
      { id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 100 },
      { id: "b1", modelId: "b", arrivalMs: 10, promptTokens: 16, maxOutputTokens: 5 },
    ];
    const log = drive(s, reqs);
    assert.ok(!log.commands.some((c) => c.kind === "swapOut"));
    assert.deepEqual(
      log.finished.map((f) => f.requestId),
      ["a1", "b1"],
    );
  });

  it("scales a hot model out: a second device loads it once its queue has waited past the threshold", () => {
    const run = (options: Partial<SchedulerOptions>) => {
      const s = new Scheduler([model("a")], twoDevices, { policy: "request", ...options });
      // 400 tokens each: a slot frees only after the threshold (0.75 of the 2 s TTFT target).
      const log = drive(s, burst(12, "a", 400));
      assert.equal(log.finished.length, 12);
      return log;
    };
    const scaled = run({});
    assert.deepEqual(loadsOf(scaled.commands, "a"), ["d0", "d1"]);
    const d1Prefills = scaled.commands.filter((c) => c.kind === "prefill" && c.deviceId === "d1");
    assert.ok(d1Prefills.length > 0, "the second copy takes a share of the queue");
    // Scale-out off: only the first device ever holds it.
    const single = run({ scaleOutWaitFraction: Infinity });
    assert.deepEqual(loadsOf(single.commands, "a"), ["d0"]);
    assert.ok(scaled.endMs < single.endMs, `two copies finish sooner (${scaled.endMs} vs ${single.endMs} ms)`);
  });

  it("does not scale out a model whose queue keeps up", () => {
    const s = new Scheduler([model("a")], twoDevices, { policy: "request" });
    const log = drive(s, burst(3));
    assert.deepEqual(loadsOf(log.commands, "a"), ["d0"]);
  });

  it("dedicated placement: every device reserved for a model loads it and takes its share", () => {
    const s = new Scheduler(
      [model("a")],
      twoDevices.map((d) => ({ ...d, allowedModels: ["a"] })),
      { policy: "request", scaleOutWaitFraction: Infinity },
    );
    const log = drive(s, burst(8));
    assert.deepEqual(loadsOf(log.commands, "a").sort(), ["d0", "d1"]);
    const prefillsOn = (d: string) => log.commands.filter((c) => c.kind === "prefill" && c.deviceId === d).length;
    assert.equal(prefillsOn("d0"), 4);
    assert.equal(prefillsOn("d1"), 4);
  });
});

describe("serverless policy", () => {
  it("keeps at most one model resident per device, where request keeps every model that fits", () => {
    const reqs: RequestSpec[] = ["a", "b", "c", "a", "b", "c"].map((m, i) => ({ id: `r${i}`, modelId: m, arrivalMs: i * 400, promptTokens: 16, maxOutputTokens: 20 }));
    const mostResident = (policy: string) => {
      // Room for two models' weights on the device.
      const s = new Scheduler(
        ["a", "b", "c"].map((m) => model(m)),
        [{ id: "d0", memoryBytes: 150 * MB }],
        { policy },
      );
      const resident = new Set<string>();
      let most = 0;
      const log = drive(s, reqs);
      for (const c of log.commands) {
        if (c.kind === "load") {
          for (const m of c.evict) resident.delete(m);
          resident.add(c.modelId);
        }
        if (c.kind === "evict") for (const m of c.modelIds) resident.delete(m);
        most = Math.max(most, resident.size);
      }
      assert.equal(log.finished.length, reqs.length);
      assert.ok(!log.commands.some((c) => c.kind === "swapOut"), "no request is ever preempted");
      return most;
    };
    assert.equal(mostResident("serverless"), 1);
    assert.equal(mostResident("request"), 2);
  });
});
