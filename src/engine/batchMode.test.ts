import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BatchModeChooser, type BatchMode } from "./batchMode.ts";

/** Run `steps` decode steps of n sequences against fake costs; the modes chosen, in order. */
function run(chooser: BatchModeChooser, n: number, steps: number, cost: Record<BatchMode, number>): BatchMode[] {
  const modes: BatchMode[] = [];
  for (let i = 0; i < steps; i++) {
    const mode = chooser.choose(n);
    modes.push(mode);
    chooser.observe(n, mode, cost[mode]);
  }
  return modes;
}

describe("decode batch mode", () => {
  it("tries both ways for a batch size, then keeps the faster", () => {
    const c = new BatchModeChooser(3);
    const modes = run(c, 2, 12, { batched: 11.4, serial: 8.3 });
    assert.deepEqual(modes.slice(0, 6), ["batched", "serial", "batched", "serial", "batched", "serial"]);
    assert.ok(modes.slice(6).every((m) => m === "serial"));
  });

  it("keeps the batch where batching is cheaper (a GPU), and decides per batch size", () => {
    const c = new BatchModeChooser(3);
    assert.ok(
      run(c, 4, 12, { batched: 5, serial: 16 })
        .slice(6)
        .every((m) => m === "batched"),
    );
    assert.ok(
      run(c, 2, 12, { batched: 11, serial: 8 })
        .slice(6)
        .every((m) => m === "serial"),
    );
    assert.equal(c.choose(4), "batched");
  });

  it("never splits a single sequence", () => {
    const c = new BatchModeChooser(3);
    assert.deepEqual(run(c, 1, 4, { batched: 10, serial: 1 }), ["batched", "batched", "batched", "batched"]);
  });
});
