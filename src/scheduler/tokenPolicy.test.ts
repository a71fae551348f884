import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, DeviceProfile, RequestSpec } from "../core/types.ts";
import { costMs, drive, MB, model, SIX } from "./testing/fakeDevice.ts";
import { computeQuotas } from "./quota.ts";
import { Scheduler } from "./Scheduler.ts";

describe("token policy", () => {
  it("preempts: parks KV in the host tier before evicting a model with running requests, and resumes them", () => {
    const b = model("b", { slo: { ttftMs: 600, tbtMs: 100 } });
    const s = new Scheduler([model("a"), b], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    // Long requests on a, then a request on b whose TTFT target cannot wait for them.
    const reqs: RequestSpec[] = [
      { id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 300 },
      { id: "a2", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 300 },
      { id: "b1", modelId: "b", arrivalMs: 300, promptTokens: 16, maxOutputTokens: 10 },
    ];
    const log = drive(s, reqs);
    const kinds = log.commands.map((c) => `${c.kind}:${"modelId" in c ? c.modelId : ""}`);
    const firstLoadB = kinds.indexOf("load:b");
    assert.ok(firstLoadB > 0, "b was loaded");
    assert.equal(kinds[firstLoadB - 1], "swapOut:a", "a's KV left the device before b replaced a");
    assert.ok(kinds.slice(firstLoadB).includes("swapIn:a"), "a's requests came back");
    assert.equal(log.tokens.get("a1"), 300);
    assert.equal(log.tokens.get("b1"), 10);
    // b's first token came long before a's requests finished: token-level, not request-level.
    const bDone = log.finished.findIndex((f) => f.requestId === "b1");
    const aDone = log.finished.findIndex((f) => f.requestId === "a1");
    assert.ok(bDone < aDone);
  });

  it("a request parked by one device resumes on another that is free for its model", () => {
    // d0 parks a1 to serve b1; d1, once c1 is done, loads a and takes a1 over from the host
    // tier instead of leaving it to wait for d0 to switch back.
    const b = model("b", { slo: { ttftMs: 600, tbtMs: 100 } });
    const devices: DeviceProfile[] = [
      { id: "d0", memoryBytes: 70 * MB, allowedModels: ["a", "b"] },
      { id: "d1", memoryBytes: 70 * MB, allowedModels: ["a", "c"] },
    ];
    const s = new Scheduler([model("a"), b, model("c")], devices, { policy: "token" });
    const reqs: RequestSpec[] = [
      { id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 300 },
      { id: "c1", modelId: "c", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 100 },
      { id: "b1", modelId: "b", arrivalMs: 300, promptTokens: 16, maxOutputTokens: 300 },
    ];
    const log = drive(s, reqs);
    const parked = log.commands.findIndex((c) => c.kind === "swapOut" && c.requestIds.includes("a1"));
    assert.equal(log.commands[parked]?.deviceId, "d0", "d0 parked a1");
    const resumed = log.commands.slice(parked).find((c) => c.kind === "swapIn" && c.requestIds.includes("a1"));
    assert.equal(resumed?.deviceId, "d1", "d1 resumed a1");
    assert.ok(log.commands.some((c) => c.kind === "decode" && c.deviceId === "d1" && c.requestIds.includes("a1")));
    assert.equal(log.tokens.get("a1"), 300);
    assert.equal(log.tokens.get("b1"), 300);
    assert.equal(s.activeRequestCount, 0);
    for (const d of s.devices.values()) assert.equal(d.ledger.bytesOf("kv"), 0);
  });

  it("lets a model keep the device while other work has slack (fewer switches)", () => {
    const s = new Scheduler([model("a"), model("b")], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    const reqs: RequestSpec[] = [
      { id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 100 },
      { id: "b1", modelId: "b", arrivalMs: 300, promptTokens: 16, maxOutputTokens: 10 },
    ];
    const log = drive(s, reqs);
    assert.ok(!log.commands.some((c) => c.kind === "swapOut"), "b's 2 s TTFT target leaves room to finish a first");
    assert.deepEqual(
      log.finished.map((f) => f.requestId),
      ["a1", "b1"],
    );
  });

  it("groups waiting requests of one model so one load serves them all", () => {
    const s = new Scheduler(
      SIX.map((m) => model(m)),
      [{ id: "d0", memoryBytes: 70 * MB }],
      { policy: "token" },
    );
    const reqs: RequestSpec[] = [];
    for (let i = 0; i < 12; i++) reqs.push({ id: `x${i}`, modelId: SIX[i % 3]!, arrivalMs: 0, promptTokens: 8, maxOutputTokens: 4 });
    const log = drive(s, reqs);
    const loads = log.commands.filter((c) => c.kind === "load").length;
    assert.equal(loads, 3, "one load per model");
    assert.equal(log.finished.length, 12);
  });

  it("runs several decode steps per command when nothing waits, one step when a prompt does", () => {
    const s = new Scheduler([model("a")], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token", decodeSliceMs: 30 });
    const log = drive(s, [{ id: "r", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 25 }]);
    const steps = log.commands.filter((c) => c.kind === "decode").map((c) => (c.kind === "decode" ? c.steps : 0));
    // 3 ms steps in a 30 ms slice: 10, 10, then the 4 left (the first token came with the prefill).
    assert.deepEqual(steps, [10, 10, 4]);
    assert.equal(log.tokens.get("r"), 25);
  });

  it("a prompt waits for a free slot instead of parking a running request that is on time", () => {
    const s = new Scheduler([model("a", { maxBatch: 2 })], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    const reqs: RequestSpec[] = [
      { id: "r1", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 40 },
      { id: "r2", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 40 },
      { id: "r3", modelId: "a", arrivalMs: 20, promptTokens: 8, maxOutputTokens: 40 },
    ];
    const log = drive(s, reqs);
    assert.ok(!log.commands.some((c) => c.kind === "swapOut"), "no KV was parked");
    const r3Prefill = log.commands.findIndex((c) => c.kind === "prefill" && c.requestId === "r3");
    const firstEnd = log.finished.findIndex((f) => f.requestId === "r1" || f.requestId === "r2");
    assert.ok(firstEnd >= 0 && r3Prefill > 0);
    assert.equal(log.tokens.get("r3"), 40);
  });

  it("a prompt that would miss its first token waiting for a slot parks the holder with the most slack, without swapping at every step", () => {
    // r1 and r2 hold both slots for ~6 s more when r3 arrives; each has banked ~25 s of slack.
    const s = new Scheduler([model("a", { maxBatch: 2, contextTokens: 2048 })], [{ id: "d0", memoryBytes: 120 * MB }], { policy: "token" });
    const reqs: RequestSpec[] = [
      { id: "r1", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 1500 },
      { id: "r2", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 1500 },
      { id: "r3", modelId: "a", arrivalMs: 1000, promptTokens: 8, maxOutputTokens: 100 },
    ];
    const log = drive(s, reqs);
    const r3First = log.commands.findIndex((c) => c.kind === "prefill" && c.requestId === "r3");
    const parked = log.commands.findIndex((c) => c.kind === "swapOut");
    assert.ok(parked >= 0 && parked < r3First, "a slot holder was parked for r3");
    for (const r of reqs) assert.equal(log.tokens.get(r.id), r.maxOutputTokens, `tokens of ${r.id}`);
    assert.ok(log.finished.findIndex((f) => f.requestId === "r3") < log.finished.findIndex((f) => f.requestId === "r1"), "r3 finished first");
    // Three decoding requests in two slots: the parked one comes back when its deadline nears
    // or a slot frees, not at every step because its deadline is the earliest.
    const swaps = log.commands.filter((c) => c.kind === "swapOut" || c.kind === "swapIn").length;
    assert.ok(swaps <= 4, `${swaps} swaps`);
    assert.equal(s.activeRequestCount, 0);
    assert.equal(s.devices.get("d0")!.ledger.bytesOf("kv"), 0);
  });

  it("requests that can no longer meet their SLO yield to requests that still can", () => {
    // "late" arrived long ago: its TTFT deadline has passed. "fresh" of another model can
    // still make its own. With one model resident at a time, fresh goes first.
    const s = new Scheduler([model("a"), model("b")], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    s.submit({ id: "late", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 4 }, 0);
    s.submit({ id: "fresh", modelId: "b", arrivalMs: 2500, promptTokens: 8, maxOutputTokens: 4 }, 2500);
    const first = s.plan("d0", 2500)!;
    assert.equal(first.kind, "load", JSON.stringify(first));
    assert.equal(first.kind === "load" && first.modelId, "b");
    // Both still finish: fresh first.
    const finished: string[] = [];
    let now = 2500;
    for (let cmd: Command | null = first; cmd; cmd = s.plan("d0", now)) {
      now += costMs(cmd);
      finished.push(...s.onCommandDone("d0", { durationMs: costMs(cmd) }, now).map((f) => f.requestId));
    }
    assert.deepEqual(finished, ["fresh", "late"]);
  });

  it("does not preempt a running batch whose deadlines a trip away and back would break, when that spares fewer requests", () => {
    const b = model("b", { slo: { ttftMs: 700, tbtMs: 100 } });
    const a = model("a", { slo: { ttftMs: 300, tbtMs: 4 } });
    const s = new Scheduler([a, b], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    // a's tokens (3 ms steps) are due every 4 ms: it gains 1 ms of slack per token, and a trip
    // to b and back (two 200 ms loads) would break its deadlines. b can only miss one.
    const reqs: RequestSpec[] = [
      { id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 400 },
      { id: "b1", modelId: "b", arrivalMs: 100, promptTokens: 16, maxOutputTokens: 4 },
    ];
    const log = drive(s, reqs);
    assert.ok(!log.commands.some((c) => c.kind === "swapOut"), "a was not preempted");
    assert.deepEqual(
      log.finished.map((f) => f.requestId),
      ["a1", "b1"],
    );
  });

  it("chunks long prompts", () => {
    const s = new Scheduler([model("a")], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token", prefillChunkTokens: 64 });
    const log = drive(s, [{ id: "p", modelId: "a", arrivalMs: 0, promptTokens: 200, maxOutputTokens: 2 }]);
    const chunks = log.commands.filter((c) => c.kind === "prefill").map((c) => (c.kind === "prefill" ? [c.fromToken, c.toToken, c.final] : []));
    assert.deepEqual(chunks, [
      [0, 64, false],
      [64, 128, false],
      [128, 192, false],
      [192, 200, true],
    ]);
  });
});

describe("quota", () => {
  it("follows the reference formula", () => {
    // Two batches with n = 100/4 = 25 and 100/5 = 20 steps per TBT; c0 = 400 ms.
    const { quotasMs, alpha } = computeQuotas(
      [
        { stepMs: 4, tbtSloMs: 100 },
        { stepMs: 5, tbtSloMs: 100 },
      ],
      400,
      4000,
    );
    const S = 1 / 25 + 1 / 20;
    assert.equal(alpha, Math.max(400 / (20 * 4000) + S, 0.5));
    assert.ok(Math.abs(quotasMs[0]! - 400 / (25 * (alpha - S))) < 1e-9);
    assert.ok(Math.abs(quotasMs[1]! - 400 / (20 * (alpha - S))) < 1e-9);
  });

  it("gives the slowest batch exactly Qmax when switching dominates", () => {
    const { quotasMs } = computeQuotas([{ stepMs: 50, tbtSloMs: 100 }], 100_000, 4000);
    assert.ok(Math.abs(quotasMs[0]! - 4000) < 1e-6);
  });
});

describe("idle decode slices", () => {
  it("runs long interruptible decodes while nothing waits, short ones once something does", () => {
    const s = new Scheduler([model("a"), model("b")], [{ id: "d0", memoryBytes: 130 * MB }], { policy: "token", decodeSliceMs: 30, idleDecodeSliceMs: 300 });
    s.submit({ id: "r1", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 500 }, 0);
    let now = 0;
    const run = (cmd: Command | null, steps?: number): Command => {
      assert.ok(cmd);
      now += costMs(cmd);
      s.onCommandDone("d0", { durationMs: costMs(cmd), ...(steps !== undefined ? { steps } : {}) }, now);
      return cmd;
    };
    run(s.plan("d0", now)); // load
    run(s.plan("d0", now)); // prefill
    const long = s.plan("d0", now)!;
    assert.equal(long.kind, "decode");
    assert.ok(long.kind === "decode" && long.interruptible && long.steps === 100, "300 ms of 3 ms steps");
    // A request arrives; the driver cut the run after 7 steps.
    s.submit({ id: "r2", modelId: "b", arrivalMs: now + 21, promptTokens: 8, maxOutputTokens: 4 }, now + 21);
    run(long, 7);
    assert.equal(s.requests.get("r1")!.generatedTokens, 8, "the first token plus the 7 steps run");
    let next = s.plan("d0", now)!;
    while (next.kind === "decode" && next.modelId === "a") {
      assert.ok(!next.interruptible && next.steps <= 10, "short slices while b waits");
      run(next);
      next = s.plan("d0", now)!;
    }
    assert.equal(next.kind === "load" || next.kind === "prefill" ? next.modelId : "", "b");
  });
});
