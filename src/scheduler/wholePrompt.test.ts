// A `wholePrompt` request (an embedding: one output, its vector, from the whole input at once)
// is prefilled in one command and ends with it, beside generation on other models.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RequestSpec } from "../core/types.ts";
import { drive, MB, model, workload } from "./testing/fakeDevice.ts";
import { Scheduler } from "./Scheduler.ts";

for (const policy of ["token", "request"]) {
  describe(`whole-prompt requests, ${policy} policy`, () => {
    it("prefill in one command and end with it, while generation on another model runs in chunks", () => {
      const s = new Scheduler([model("gen"), model("emb")], [{ id: "d0", memoryBytes: 130 * MB }], { policy, prefillChunkTokens: 64 });
      const embeds: RequestSpec[] = Array.from({ length: 4 }, (_, i) => ({
        id: `e${i}`,
        modelId: "emb",
        arrivalMs: i * 30,
        promptTokens: 200,
        maxOutputTokens: 1,
        wholePrompt: true,
      }));
      const gens = workload(4, ["gen"], 30, 200, 8);
      const log = drive(s, [...gens, ...embeds]);
      for (const e of embeds) {
        const prefills = log.commands.filter((c) => c.kind === "prefill" && c.requestId === e.id);
        assert.deepEqual(
          prefills.map((c) => c.kind === "prefill" && [c.fromToken, c.toToken, c.final]),
          [[0, 200, true]],
        );
        assert.ok(!log.commands.some((c) => (c.kind === "decode" || c.kind === "swapOut") && c.requestIds.includes(e.id)), `${e.id} never decodes or parks`);
        assert.ok(log.finished.some((f) => f.requestId === e.id && f.reason === "length"));
      }
      // Generation still goes in chunks of 64.
      const genPrefills = log.commands.filter((c) => c.kind === "prefill" && c.requestId === gens[0]!.id);
      assert.equal(genPrefills.length, 4);
      for (const g of gens) assert.equal(log.tokens.get(g.id), 8);
      assert.equal(s.activeRequestCount, 0);
      assert.equal(s.devices.get("d0")!.ledger.bytesOf("kv"), 0);
    });
  });
}
