import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MB, model } from "./testing/fakeDevice.ts";
import { MemoryLedger } from "./MemoryLedger.ts";
import { Scheduler } from "./Scheduler.ts";
import { weightKey } from "./state.ts";

describe("memory ledger", () => {
  it("says no to what does not fit and changes nothing", () => {
    const l = new MemoryLedger(100);
    assert.equal(l.allocate("w", "weights", 60), true);
    assert.equal(l.allocate("k", "kv", 50), false);
    assert.equal(l.usedBytes, 60);
    assert.equal(l.allocate("k", "kv", 40), true);
    assert.equal(l.resize("k", 41), false);
    l.free("w");
    assert.equal(l.bytesOf("kv"), 40);
    assert.equal(l.freeBytes, 60);
  });
});

describe("residency", () => {
  it("uses the ledger's answer: memory it made room for but cannot allocate is a broken invariant, named", () => {
    const s = new Scheduler([model("a")], [{ id: "d0", memoryBytes: 200 * MB }]);
    // Something outside the mechanism took the model's weight key without making it resident.
    s.devices.get("d0")!.ledger.allocate(weightKey("a"), "weights", MB);
    s.submit({ id: "r", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 4 }, 0);
    assert.throws(() => s.plan("d0", 0), /device d0: the ledger refused w:a \(62914560 bytes, .*key already held\)/);
  });
});
