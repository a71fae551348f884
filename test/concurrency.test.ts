// Six models, room for two, many concurrent requests: everything completes, nothing is left behind.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { CommandRecord } from "../src/runtime/Pool.ts";
import { STAND_IN_IDS, startTestServer } from "./helpers.ts";

for (const policy of ["token", "request"]) {
  describe(`pool under concurrency, ${policy} policy`, () => {
    let server: Awaited<ReturnType<typeof startTestServer>>;
    const commands: CommandRecord[] = [];
    before(async () => {
      // Two devices of 80 MB: each holds one 58M model (plus a small one), never all six.
      server = await startTestServer({ devices: { count: 2, memory: "80MB" }, scheduler: { policy, admissionTtftFactor: 0, lateWaitCapFactor: false } });
      server.pool.on("command", (c) => commands.push(c));
    });
    after(async () => server.shutdown());

    it("completes 36 concurrent requests over 6 models with room for 2, each with its full length", async () => {
      const wanted = Array.from({ length: 36 }, (_, i) => ({ model: STAND_IN_IDS[i % 6]!, max: 8 + (i % 5) * 4, stream: i % 3 === 0 }));
      const results = await Promise.all(
        wanted.map(async (w, i) => {
          if (!w.stream) {
            const r = await server.client.completions.create({ model: w.model, prompt: `Request number ${i} asks`, max_tokens: w.max, temperature: 0 });
            return r.usage!.completion_tokens;
          }
          const s = await server.client.completions.create({
            model: w.model,
            prompt: `Request number ${i} asks`,
            max_tokens: w.max,
            temperature: 0,
            stream: true,
            stream_options: { include_usage: true },
          });
          let n = 0;
          for await (const c of s) if (c.usage) n = c.usage.completion_tokens;
          return n;
        }),
      );
      assert.deepEqual(
        results,
        wanted.map((w) => w.max),
      );
      assert.equal(server.pool.activeRequests, 0);
      assert.equal(server.pool.scheduler.activeRequestCount, 0);
      assert.equal(server.pool.scheduler.groups.length, 0);
      for (const d of server.pool.scheduler.snapshot().devices) {
        assert.equal(d.kvBytes, 0, `KV left on ${d.id}`);
        assert.ok(d.weightBytes <= d.memoryBytes);
      }
      const loads = commands.filter((c) => c.kind === "load").length;
      assert.ok(loads >= 6, `the pool swapped models (${loads} loads)`);
    });
  });
}

describe("long decode runs while nothing waits", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const commands: CommandRecord[] = [];
  before(async () => {
    server = await startTestServer({ devices: { count: 1, memory: "80MB" }, scheduler: { idleDecodeSliceMs: 2000 } });
    server.pool.on("command", (c) => commands.push(c));
  });
  after(async () => server.shutdown());

  it("are cut short when a request arrives, and every token still arrives", async () => {
    const model = STAND_IN_IDS[4]!;
    const alone = server.client.completions.create({ model, prompt: "A long answer", max_tokens: 600, temperature: 0 });
    const started = new Promise<void>((resolve) => {
      const on = (c: { kind: string; interruptible?: boolean }) => {
        if (c.kind === "decode" && c.interruptible) {
          server.pool.off("commandStart", on);
          resolve();
        }
      };
      server.pool.on("commandStart", on);
    });
    await started;
    const second = await server.client.completions.create({ model, prompt: "Me too", max_tokens: 4, temperature: 0 });
    assert.equal(second.usage!.completion_tokens, 4);
    assert.equal((await alone).usage!.completion_tokens, 600);
    const cut = commands.filter((c) => c.kind === "decode" && c.interruptible && c.steps! < c.plannedSteps!);
    assert.ok(cut.length >= 1, "a long run ended early for the new request");
  });
});
