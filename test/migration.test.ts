// A request parked in the host tier by one device resumes on another device (another
// worker process) and continues with exactly the tokens it produces without the move.
// The token policy relies on this when a free device adopts a parked request.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DeviceProcess } from "../src/engine/DeviceProcess.ts";
import type { Sampling, WorkerCommand } from "../src/engine/protocol.ts";
import { standInPaths } from "./helpers.ts";

describe("parked KV moves between devices", () => {
  const kvDir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "pitcher-migration-"));
  const first = new DeviceProcess("first", { threads: 1, gpu: false, kvDir });
  const second = new DeviceProcess("second", { threads: 1, gpu: false, kvDir });
  const load: WorkerCommand = {
    op: "load",
    modelId: "m",
    path: standInPaths()["llama-58m-q8-a"]!,
    fingerprint: "llama-58m-q8-a",
    contextTokens: 256,
    slots: 2,
    batchTokens: 64,
    evict: [],
    endTokens: [],
  };
  const prompt = [1, 450, 2318, 338, 263, 1243, 310, 278, 11565, 29889, 1570, 338];

  before(async () => {
    await first.start();
    await second.start();
    await first.call(load);
    await second.call(load);
  });
  after(async () => {
    await first.stop();
    await second.stop();
    fs.rmSync(kvDir, { recursive: true, force: true });
  });

  async function prefill(dev: DeviceProcess, requestId: string, sampling: Sampling): Promise<number> {
    const r = await dev.call({ op: "prefill", modelId: "m", requestId, tokens: prompt, final: true, sampling });
    return r.result.tokens![0]!;
  }

  async function decode(dev: DeviceProcess, requestId: string, out: number[], n: number, sampling: Sampling): Promise<void> {
    for (let i = 0; i < n; i++) {
      const item = { requestId, token: out.at(-1)!, tokenIndex: out.length, sampling };
      // Decode tokens travel in progress messages, one entry per step.
      const steps: number[] = [];
      await dev.call({ op: "decode", modelId: "m", steps: 1, progressEveryMs: 0, items: [item] }, [], (p) => steps.push(p.tokens[0]!));
      assert.equal(steps.length, 1);
      out.push(steps[0]!);
    }
  }

  for (const sampling of [{ temperature: 0 }, { temperature: 0.9, seed: 7 }] as Sampling[]) {
    it(`${sampling.temperature ? "seeded sampling" : "greedy"}: swapped out on one worker, in on another, same tokens`, async () => {
      const id = `alone-${sampling.temperature}`;
      const alone = [await prefill(first, id, sampling)];
      await decode(first, id, alone, 40, sampling);
      await first.call({ op: "release", requestIds: [id] });

      const moved = `moved-${sampling.temperature}`;
      const out = [await prefill(first, moved, sampling)];
      await decode(first, moved, out, 15, sampling);
      const parked = await first.call({ op: "swapOut", modelId: "m", requestIds: [moved] });
      assert.ok(parked.result.bytes! > 0);
      const resumed = await second.call({ op: "swapIn", modelId: "m", requestIds: [moved] });
      assert.equal(resumed.result.failed, undefined);
      await decode(second, moved, out, 25, sampling);
      await second.call({ op: "release", requestIds: [moved] });

      assert.equal(out.length, 41);
      assert.deepEqual(out, alone);
    });
  }
});
