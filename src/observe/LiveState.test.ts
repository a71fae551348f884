// The dashboard's state of a device that dies and will not start, fed from a plain emitter
// standing for the pool (its device events and its scheduler's snapshot).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { PoolEvents } from "../runtime/Pool.ts";
import type { DeviceSnapshot, SchedulerSnapshot } from "../scheduler/snapshot.ts";
import { LiveState } from "./LiveState.ts";

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
