// The dashboard's state of a device that dies and will not start, fed from a plain emitter
// standing for the pool (its device events and its scheduler's snapshot).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { CommandStart, PoolEvents } from "../runtime/Pool.ts";
import type { DeviceSnapshot, SchedulerSnapshot } from "../scheduler/snapshot.ts";
import { FIRST_SEGMENTS_PER_DEVICE, LiveState } from "./LiveState.ts";

function fakePool() {
  const emitter = new EventEmitter<PoolEvents>();
  let nowMs = 0;
  const device = (id: string, down: boolean): DeviceSnapshot => ({ id, down, busy: null, residentModels: [], memoryBytes: 100, weightBytes: 0, kvBytes: 0 });
  const snap: SchedulerSnapshot = { devices: [device("dev0", false), device("dev1", false)], waitingByModel: { m: 0 }, runningByModel: { m: 0 }, hostKvRequests: 0 };
  const pool = Object.assign(emitter, { now: () => nowMs, snapshot: () => snap, models: new Map([["m", {}]]) });
  return { pool, snap, setNow: (ms: number) => (nowMs = ms) };
}

describe("LiveState: devices that are not up", () => {
  it("shows a dead device restarting, then down with its attempts, last error and next try, then up", () => {
    const { pool, snap, setNow } = fakePool();
    const live = new LiveState(pool);
    assert.deepEqual(
      live.view(0).devices.map((d) => [d.id, d.state]),
      [
        ["dev0", "up"],
        ["dev1", "up"],
      ],
    );

    setNow(1000);
    snap.devices[0]!.down = true;
    pool.emit("device", { deviceId: "dev0", event: "crashed", detail: "signal SIGABRT" });
    let d = live.view(0).devices[0]!;
    assert.equal(d.up, false);
    assert.equal(d.state, "restarting");
    assert.deepEqual(d.restart, { attempts: 0, lastError: "signal SIGABRT", retryAtMs: null });

    pool.emit("device", { deviceId: "dev0", event: "restart_failed", detail: "no device memory", attempt: 7, retryInMs: 30_000, state: "down" });
    d = live.view(0).devices[0]!;
    assert.equal(d.state, "down");
    assert.deepEqual(d.restart, { attempts: 7, lastError: "no device memory", retryAtMs: 31_000 });
    assert.equal(live.view(0).devices[1]!.state, "up", "the other device is untouched");

    snap.devices[0]!.down = false;
    pool.emit("device", { deviceId: "dev0", event: "restarted", detail: "signal SIGABRT", attempt: 8 });
    d = live.view(0).devices[0]!;
    assert.equal(d.state, "up");
    assert.equal(d.restart, undefined);
  });
});

describe("LiveState: what devices do and what requests see", () => {
  const slo = { ttftMs: 1000, tbtMs: 100 };
  const start = (deviceId: string, kind: CommandStart["kind"], requestIds: string[], startMs: number): CommandStart => ({
    deviceId,
    kind,
    modelId: "m",
    startMs,
    requestIds,
    evictModelIds: [],
  });

  it("calls a device busy with its bound requests between commands, idle once they end", () => {
    const { pool } = fakePool();
    const live = new LiveState(pool);
    pool.emit("commandStart", start("dev0", "prefill", ["r1"], 0));
    assert.deepEqual(
      live.view(0).devices.map((d) => [d.activity, d.boundRequests]),
      [
        ["prefill", 1],
        ["idle", 0],
      ],
    );
    pool.emit("command", { ...start("dev0", "prefill", ["r1"], 0), endMs: 5 });
    pool.emit("commandStart", start("dev0", "decode", ["r1", "r2"], 5));
    pool.emit("command", { ...start("dev0", "decode", ["r1", "r2"], 5), endMs: 9 });
    // Between commands, seven requests or two: not idle.
    assert.deepEqual(
      live.view(0).devices.map((d) => [d.activity, d.boundRequests]),
      [
        ["busy", 2],
        ["idle", 0],
      ],
    );
    pool.emit("commandStart", start("dev0", "swapOut", ["r2"], 9));
    assert.deepEqual([live.view(0).devices[0]!.activity, live.view(0).devices[0]!.boundRequests], ["swapOut", 1]);
    pool.emit("outcome", { id: "r1", modelId: "m", arrivalMs: 0, tokenTimesMs: [5, 9], promptTokens: 3, reason: "stop", slo });
    pool.emit("command", { ...start("dev0", "swapOut", ["r2"], 9), endMs: 12 });
    assert.deepEqual([live.view(0).devices[0]!.activity, live.view(0).devices[0]!.boundRequests], ["idle", 0]);
  });

  it("reports TTFT and TBT percentiles, the request rate and errors by code over the window", () => {
    const { pool, setNow } = fakePool();
    const live = new LiveState(pool);
    setNow(10_000);
    for (let i = 0; i < 100; i++) {
      // TTFT i+1 ms; gaps of 10 ms, one request's last gap 500 ms.
      const first = 1000 + i + 1;
      pool.emit("outcome", { id: `r${i}`, modelId: "m", arrivalMs: 1000, tokenTimesMs: [first, first + 10, first + (i === 99 ? 510 : 20)], promptTokens: 3, reason: "stop", slo });
    }
    pool.emit("outcome", { id: "x", modelId: "m", arrivalMs: 1000, tokenTimesMs: [], promptTokens: 3, reason: "rejected", slo });
    pool.emit("outcome", { id: "y", modelId: "m", arrivalMs: 1000, tokenTimesMs: [], promptTokens: 3, reason: "error", slo, error: "worker exited" });
    const w = live.view(0).models[0]!.window;
    assert.deepEqual(w.ttftMs, { p50: 50, p99: 99 });
    assert.deepEqual(w.tbtMs, { p50: 10, p99: 10 }, "199 of 200 gaps are 10 ms");
    assert.deepEqual(w.errorsByCode, { rate_limit_exceeded: 1, device_failed: 1 });
    assert.equal(w.requestsPerS, 102 / 10, "102 requests ended in the 10 s the server has run");
    assert.equal(w.scored, 102);
  });

  it("sends a busy minute's timeline as a small first message, and every new segment after", () => {
    const { pool, setNow } = fakePool();
    const live = new LiveState(pool);
    // 10,000 back-to-back 3 ms decode steps on each of two devices, a load now and then;
    // on dev1 two models take turns, so its steps do not join.
    let t = 0;
    for (let i = 0; i < 10_000; i++, t += 3)
      for (const dev of ["dev0", "dev1"]) {
        const kind = i % 500 === 0 ? "load" : "decode";
        const modelId = dev === "dev1" && i % 2 ? "m2" : "m";
        pool.emit("command", { ...start(dev, kind, kind === "load" ? [] : ["a", "b", "c"], t), modelId, endMs: t + 3 });
      }
    setNow(t);
    const first = live.view(0);
    const bytes = Buffer.byteLength(JSON.stringify(first));
    assert.ok(bytes < 50_000, `first message ${bytes} bytes`);
    assert.ok(first.segments.some((s) => s.kind === "load") && first.segments.some((s) => s.kind === "decode"));
    assert.ok(first.segments.every((s) => s.endMs >= t - 60_000 - 1));
    assert.equal(first.segments.filter((s) => s.device === "dev0" && s.kind === "decode").length, 20, "dev0's decode steps join between its loads");
    assert.equal(first.segments.filter((s) => s.device === "dev1").length, FIRST_SEGMENTS_PER_DEVICE, "dev1's newest steps");
    assert.equal(first.segments.at(-1)!.endMs, t, "up to now");
    // Later messages carry each new command as it is.
    pool.emit("command", { ...start("dev0", "decode", ["a"], t), endMs: t + 3 });
    assert.equal(live.view(first.cursor).segments.length, 1);
  });
});
