// A request parked in the host tier by one device resumes on another device (another
// worker process) and continues with exactly the tokens it produces without the move.
// The token policy relies on this when a free device adopts a parked request.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Sampling } from "../src/core/devicePort.ts";
import { EngineDevice } from "../src/engine/EngineDevice.ts";
import { HostKvTier } from "../src/engine/HostKvTier.ts";
import { servedModel } from "./fakes/servedModel.ts";
import { standInPaths } from "./helpers.ts";

describe("parked KV moves between devices", () => {
  const hostKv = HostKvTier.temporary("pitcher-migration-");
  const model = servedModel("m", { contextTokens: 256, maxBatch: 2 }, { path: standInPaths()["llama-58m-q8-a"]!, fingerprint: "llama-58m-q8-a" });
  const options = { threads: 1, gpu: false as const, hostKv, models: [model], prefillChunkTokens: 64 };
  const first = new EngineDevice("first", options);
  const second = new EngineDevice("second", options);
  const prompt = [1, 450, 2318, 338, 263, 1243, 310, 278, 11565, 29889, 1570, 338];

  before(async () => {
    await first.start();
    await second.start();
    await first.load("m", [], []);
    await second.load("m", [], []);
  });
  after(async () => {
    await first.stop();
    await second.stop();
    hostKv.close();
  });

  async function prefill(dev: EngineDevice, requestId: string, sampling: Sampling): Promise<number> {
    const r = await dev.prefill({ modelId: "m", requestId, tokens: prompt, final: true, sampling }, []);
    return r.first!.token;
  }

  async function decode(dev: EngineDevice, requestId: string, out: number[], n: number, sampling: Sampling): Promise<void> {
    for (let i = 0; i < n; i++) {
      const item = { requestId, token: out.at(-1)!, tokenIndex: out.length, sampling };
      // Decode tokens arrive through onTokens, one call per step.
      const steps: number[] = [];
      await dev.decode({ modelId: "m", steps: 1, progressEveryMs: 0, items: [item] }, [], (t) => steps.push(t[0]!.token));
      assert.equal(steps.length, 1);
      out.push(steps[0]!);
    }
  }

  for (const sampling of [{ temperature: 0 }, { temperature: 0.9, seed: 7 }] as Sampling[]) {
    it(`${sampling.temperature ? "seeded sampling" : "greedy"}: swapped out on one worker, in on another, same tokens`, async () => {
      const id = `alone-${sampling.temperature}`;
      const alone = [await prefill(first, id, sampling)];
      await decode(first, id, alone, 40, sampling);
      await first.release([id]);

      const moved = `moved-${sampling.temperature}`;
      const out = [await prefill(first, moved, sampling)];
      await decode(first, moved, out, 15, sampling);
      const parked = await first.swapOut("m", [moved], []);
      assert.ok(parked.bytes! > 0);
      const resumed = await second.swapIn("m", [moved], []);
      assert.equal(resumed.failed, undefined);
      await decode(second, moved, out, 25, sampling);
      await second.release([moved]);

      assert.equal(out.length, 41);
      assert.deepEqual(out, alone);
    });
  }
});
