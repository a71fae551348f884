import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command, DeviceProfile, FinishedRequest, ModelProfile, RequestSpec } from "../core/types.ts";
import { generateWorkload, workloadSchema } from "../workload/workload.ts";
import { MemoryLedger } from "./MemoryLedger.ts";
import { computeQuotas } from "./quota.ts";
import { Scheduler, type PolicyName } from "./Scheduler.ts";

const MB = 1 << 20;

function model(id: string, over: Partial<ModelProfile> = {}): ModelProfile {
  return {
    id,
    weightBytes: 60 * MB,
    kvBytesPerToken: 8192,
    contextTokens: 512,
    maxBatch: 4,
    slo: { ttftMs: 2000, tbtMs: 100 },
    estimates: { decodeStepMs: 3, decodeExtraPerSequenceMs: 1, prefillMsPerToken: 1, loadMs: 200, unloadMs: 5, kvSwapMsPerToken: 0.01 },
    ...over,
  };
}

/** Fake device costs: fixed per command kind, so the run is deterministic. */
function costMs(cmd: Command): number {
  switch (cmd.kind) {
    case "load":
      return 200;
    case "evict":
      return 5;
    case "prefill":
      return cmd.toToken - cmd.fromToken;
    case "decode":
      return cmd.steps * (3 + cmd.requestIds.length - 1);
    case "swapOut":
    case "swapIn":
      return 1;
  }
}

interface RunLog {
  commands: Command[];
  finished: FinishedRequest[];
  tokens: Map<string, number>;
  endMs: number;
}

/**
 * Drive the scheduler in virtual time with a fake device and check its invariants after
 * every decision: memory within budget, steps only on ready models with device KV, no
 * model evicted while a request's KV sits on it.
 */
function drive(s: Scheduler, arrivals: RequestSpec[], limitMs = 600_000): RunLog {
  const log: RunLog = { commands: [], finished: [], tokens: new Map(), endMs: 0 };
  const pending = [...arrivals].sort((a, b) => a.arrivalMs - b.arrivalMs);
  const busyUntil = new Map<string, number>();
  let now = 0;
  while (now < limitMs) {
    while (pending.length > 0 && pending[0]!.arrivalMs <= now) {
      const res = s.submit(pending.shift()!, now);
      assert.equal(res.accepted, true);
    }
    // Complete what is due.
    for (const [dev, t] of [...busyUntil]) {
      if (t > now) continue;
      busyUntil.delete(dev);
      const cmd = log.commands.findLast((c) => c.deviceId === dev)!;
      if (cmd.kind === "decode") for (const id of cmd.requestIds) log.tokens.set(id, (log.tokens.get(id) ?? 0) + cmd.steps);
      if (cmd.kind === "prefill" && cmd.final) log.tokens.set(cmd.requestId, (log.tokens.get(cmd.requestId) ?? 0) + 1);
      log.finished.push(...s.onCommandDone(dev, { durationMs: costMs(cmd) }, now));
    }
    for (const dev of s.devices.keys()) {
      if (busyUntil.has(dev)) continue;
      const cmd = s.plan(dev, now);
      if (!cmd) continue;
      checkInvariants(s, cmd);
      log.commands.push(cmd);
      busyUntil.set(dev, now + costMs(cmd));
    }
    const next = Math.min(...busyUntil.values(), pending[0]?.arrivalMs ?? Infinity);
    if (next === Infinity) break;
    now = next;
  }
  log.endMs = now;
  return log;
}

function checkInvariants(s: Scheduler, cmd: Command): void {
  const dev = s.devices.get(cmd.deviceId)!;
  assert.ok(dev.ledger.usedBytes <= dev.ledger.capacityBytes, "ledger over budget");
  if (cmd.kind === "decode" || cmd.kind === "prefill") {
    assert.equal(dev.resident.get(cmd.modelId)?.ready, true, `${cmd.kind} on a model that is not ready`);
    const ids = cmd.kind === "decode" ? cmd.requestIds : [cmd.requestId];
    for (const id of ids) assert.equal(s.requests.get(id)!.kv, "device", `${cmd.kind} of ${id} without its KV on the device`);
    assert.ok(ids.length <= s.models.get(cmd.modelId)!.maxBatch);
  }
  if (cmd.kind === "load") {
    for (const m of cmd.evict)
      for (const r of s.requests.values())
        assert.ok(!(r.deviceId === cmd.deviceId && r.spec.modelId === m && r.kv === "device"), `evicted ${m} with KV of ${r.spec.id} on it`);
  }
}

function workload(n: number, models: string[], gapMs: number, promptTokens = 64, maxOutputTokens = 32): RequestSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    modelId: models[(i * 7) % models.length]!,
    arrivalMs: i * gapMs,
    promptTokens,
    maxOutputTokens,
  }));
}

const SIX = ["a", "b", "c", "d", "e", "f"];

for (const policy of ["token", "request"] as PolicyName[]) {
  describe(`scheduler, ${policy} policy`, () => {
    it("finishes every request with its full length on 6 models with room for 2, nothing left behind", () => {
      const devices: DeviceProfile[] = [{ id: "d0", memoryBytes: 130 * MB }];
      const s = new Scheduler(SIX.map((m) => model(m)), devices, { policy });
      const reqs = workload(36, SIX, 20);
      const log = drive(s, reqs);
      assert.equal(log.finished.length, 36);
      assert.ok(log.finished.every((f) => f.reason === "length"));
      for (const r of reqs) assert.equal(log.tokens.get(r.id), r.maxOutputTokens, `tokens of ${r.id}`);
      assert.equal(s.activeRequestCount, 0);
      assert.equal(s.groups.length, 0);
      assert.equal(s.devices.get("d0")!.ledger.bytesOf("kv"), 0);
      assert.ok(s.devices.get("d0")!.resident.size <= 2);
    });

    it("spreads work over two devices and finishes it all", () => {
      const devices: DeviceProfile[] = [
        { id: "d0", memoryBytes: 70 * MB },
        { id: "d1", memoryBytes: 70 * MB },
      ];
      const s = new Scheduler(SIX.map((m) => model(m)), devices, { policy });
      const reqs = workload(40, SIX, 10);
      const log = drive(s, reqs);
      assert.equal(log.finished.length, 40);
      const used = new Set(log.commands.map((c) => c.deviceId));
      assert.deepEqual([...used].sort(), ["d0", "d1"]);
    });
  });
}

describe("liveness", () => {
  for (const policy of ["token", "request"] as PolicyName[]) {
    it(`${policy}: a step blocked for memory never stalls runnable work (weights nearly fill the devices)`, () => {
      // Found by the benchmark: two resident models left no room for a new request's KV, the
      // policy kept asking for that prefill and never ran the other model's decode.
      const sizes: Record<string, number> = { a: 62.4, b: 62.4, moe: 46, f16: 33, s1: 5.8, s2: 11 };
      const models = Object.entries(sizes).map(([id, mb]) => model(id, { weightBytes: mb * 1e6 }));
      const s = new Scheduler(models, [{ id: "d0", memoryBytes: 80e6 }, { id: "d1", memoryBytes: 80e6 }], { policy });
      const reqs = generateWorkload(workloadSchema.parse({ durationSeconds: 60, ratePerSecond: 4, seed: 7 }), Object.keys(sizes)).map((r) => ({
        id: `r${r.index}`,
        modelId: r.modelId,
        arrivalMs: r.arrivalMs,
        promptTokens: 64,
        maxOutputTokens: 32,
      }));
      const log = drive(s, reqs);
      assert.equal(log.finished.length, reqs.length);
      assert.equal(s.activeRequestCount, 0);
    });
  }
});

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
    assert.deepEqual(log.finished.map((f) => f.requestId), ["a1", "b1"]);
  });

  it("groups waiting requests of one model so one load serves them all", () => {
    const s = new Scheduler(SIX.map((m) => model(m)), [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
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
    assert.deepEqual(log.finished.map((f) => f.requestId), ["a1", "b1"]);
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

describe("events", () => {
  it("cancel frees the request's KV and asks the device to release its sequence", () => {
    const s = new Scheduler([model("a")], [{ id: "d0", memoryBytes: 70 * MB }]);
    s.submit({ id: "r", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 50 }, 0);
    const load = s.plan("d0", 0)!;
    assert.equal(load.kind, "load");
    s.onCommandDone("d0", { durationMs: 200 }, 200);
    const pre = s.plan("d0", 200)!;
    assert.equal(pre.kind, "prefill");
    assert.ok(s.devices.get("d0")!.ledger.bytesOf("kv") > 0);
    const f = s.cancel("r", 204);
    assert.deepEqual(f, { requestId: "r", reason: "cancelled" });
    assert.equal(s.devices.get("d0")!.ledger.bytesOf("kv"), 0);
    assert.equal(s.cancel("r", 205), undefined, "a request ends once");
    s.onCommandDone("d0", { durationMs: 8 }, 208);
    assert.deepEqual(s.takeReleases("d0"), ["r"]);
  });

  it("a failed device fails its own requests only; waiting ones are served once it is back", () => {
    const s = new Scheduler([model("a"), model("b")], [{ id: "d0", memoryBytes: 140 * MB }]);
    s.submit({ id: "r1", modelId: "a", arrivalMs: 0, promptTokens: 8, maxOutputTokens: 5 }, 0);
    assert.equal(s.plan("d0", 0)!.kind, "load");
    s.onCommandDone("d0", { durationMs: 1 }, 1);
    assert.equal(s.plan("d0", 1)!.kind, "prefill");
    s.submit({ id: "r2", modelId: "b", arrivalMs: 2, promptTokens: 8, maxOutputTokens: 5 }, 2);
    const failed = s.onDeviceFailed("d0", "worker crashed", 3);
    assert.deepEqual(failed, [{ requestId: "r1", reason: "error", error: "worker crashed" }]);
    assert.equal(s.plan("d0", 3), null, "a down device gets no work");
    s.onDeviceUp("d0", 4);
    const log = drive(s, []);
    assert.deepEqual(log.finished.map((f) => f.requestId), ["r2"]);
    assert.equal(s.devices.get("d0")!.ledger.usedBytes, 60 * MB);
  });

  it("a request parked in the host tier survives its device's failure and finishes", () => {
    const b = model("b", { slo: { ttftMs: 600, tbtMs: 100 } });
    const s = new Scheduler([model("a"), b], [{ id: "d0", memoryBytes: 70 * MB }], { policy: "token" });
    s.submit({ id: "a1", modelId: "a", arrivalMs: 0, promptTokens: 16, maxOutputTokens: 300 }, 0);
    // Run until b1's arrival makes the device park a1 (the preemption test above, step by step).
    let now = 0;
    let cmd: Command | null = null;
    let parked = false;
    for (let i = 0; i < 200 && !parked; i++) {
      if (now >= 300 && !s.requests.has("b1")) s.submit({ id: "b1", modelId: "b", arrivalMs: now, promptTokens: 16, maxOutputTokens: 10 }, now);
      cmd = s.plan("d0", now);
      if (!cmd) break;
      now += costMs(cmd);
      s.onCommandDone("d0", { durationMs: costMs(cmd) }, now);
      parked = cmd.kind === "swapOut" && cmd.requestIds.includes("a1");
    }
    assert.ok(parked, "a1 was parked");
    // The worker dies while b is loading: b1 (if bound) fails, a1 stays.
    const b1Bound = s.requests.get("b1")?.deviceId === "d0";
    s.plan("d0", now);
    const failed = s.onDeviceFailed("d0", "worker crashed", now).map((f) => f.requestId);
    assert.ok(!failed.includes("a1"));
    assert.deepEqual(failed, b1Bound ? ["b1"] : []);
    assert.equal(s.requests.get("a1")!.kv, "host");
    s.onDeviceUp("d0", now);
    const log = drive(s, []);
    assert.ok(log.finished.some((f) => f.requestId === "a1" && f.reason === "length"));
    assert.ok(log.commands.some((c) => c.kind === "swapIn" && c.requestIds.includes("a1")), "a1 came back from the host tier");
    assert.equal(s.activeRequestCount, 0);
    assert.equal(s.devices.get("d0")!.ledger.bytesOf("kv"), 0);
  });

  it("admission control rejects with a retry time when the predicted wait breaks the TTFT target", () => {
    const s = new Scheduler([model("a", { slo: { ttftMs: 500, tbtMs: 100 } })], [{ id: "d0", memoryBytes: 70 * MB }], {
      admissionTtftFactor: 1,
    });
    let rejected;
    for (let i = 0; i < 50; i++) {
      const res = s.submit({ id: `r${i}`, modelId: "a", arrivalMs: 0, promptTokens: 64, maxOutputTokens: 32 }, 0);
      if (!res.accepted) {
        rejected = res;
        break;
      }
    }
    assert.ok(rejected && !rejected.accepted);
    assert.ok(rejected.retryAfterMs > 0);
  });

  it("refuses requests longer than the context", () => {
    const s = new Scheduler([model("a")], [{ id: "d0", memoryBytes: 70 * MB }]);
    assert.throws(() => s.submit({ id: "r", modelId: "a", arrivalMs: 0, promptTokens: 500, maxOutputTokens: 20 }, 0), /context holds 512/);
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
