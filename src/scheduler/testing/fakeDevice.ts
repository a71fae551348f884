/**
 * A fake device in virtual time for the scheduler's tests: model profiles, fixed command
 * costs, and a driver that checks the scheduler's invariants after every decision. No
 * timers: a whole run takes milliseconds and repeats exactly.
 */
import assert from "node:assert/strict";
import type { Command, FinishedRequest, ModelProfile, RequestSpec } from "../../core/types.ts";
import type { Scheduler } from "../Scheduler.ts";

export const MB = 1 << 20;

export function model(id: string, over: Partial<ModelProfile> = {}): ModelProfile {
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
export function costMs(cmd: Command): number {
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

export interface RunLog {
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
export function drive(s: Scheduler, arrivals: RequestSpec[], limitMs = 600_000): RunLog {
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
    // Requests past the late-wait cap end before the devices are planned, as in the drivers.
    log.finished.push(...s.expire(now));
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

export function checkInvariants(s: Scheduler, cmd: Command): void {
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
      for (const r of s.requests.values()) assert.ok(!(r.deviceId === cmd.deviceId && r.spec.modelId === m && r.kv === "device"), `evicted ${m} with KV of ${r.spec.id} on it`);
  }
}

export function workload(n: number, models: string[], gapMs: number, promptTokens = 64, maxOutputTokens = 32): RequestSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    modelId: models[(i * 7) % models.length]!,
    arrivalMs: i * gapMs,
    promptTokens,
    maxOutputTokens,
  }));
}

export const SIX = ["a", "b", "c", "d", "e", "f"];
