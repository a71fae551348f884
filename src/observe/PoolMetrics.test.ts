// Device events as the metrics count them, fed from a plain emitter standing for the pool.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { PoolEvents } from "../runtime/Pool.ts";
import type { SchedulerSnapshot } from "../scheduler/snapshot.ts";
import { PoolMetrics } from "./PoolMetrics.ts";

function fakePool() {
  const emitter = new EventEmitter<PoolEvents>();
  const snap: SchedulerSnapshot = {
    devices: [{ id: "dev0", down: true, busy: null, residentModels: [], memoryBytes: 100, weightBytes: 0, kvBytes: 0 }],
    waitingByModel: { m: 0 },
    runningByModel: { m: 0 },
    hostKvRequests: 0,
  };
  return Object.assign(emitter, { now: () => 0, snapshot: () => snap, models: new Map([["m", {}]]) });
}

describe("PoolMetrics: devices", () => {
  it("counts a crash once and each failed restart apart", async () => {
    const pool = fakePool();
    const metrics = new PoolMetrics(pool);
    pool.emit("device", { deviceId: "dev0", event: "crashed", detail: "signal SIGKILL" });
    pool.emit("device", { deviceId: "dev0", event: "restart_failed", detail: "no memory", attempt: 1, retryInMs: 500, state: "restarting" });
    pool.emit("device", { deviceId: "dev0", event: "restart_failed", detail: "no memory", attempt: 2, retryInMs: 1000, state: "restarting" });
    const text = await metrics.text();
    assert.match(text, /^pitcher_device_crashes_total\{device="dev0"\} 1$/m);
    assert.match(text, /^pitcher_device_restart_failures_total\{device="dev0"\} 2$/m);
    assert.match(text, /^pitcher_device_up\{device="dev0"\} 0$/m);
  });
});
