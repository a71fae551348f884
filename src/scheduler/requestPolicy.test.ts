import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestSpec } from "../core/types.ts";
import { drive, MB, model } from "./testing/fakeDevice.ts";
import { Scheduler } from "./Scheduler.ts";

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
});
