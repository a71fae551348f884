// The pool against fake devices and the real (pure) scheduler: no workers, no sleeps, no
// polling. A held device call stands for "the device is busy now"; `settled()` lets every
// pending promise run (fake devices use no timers), so the pool is quiet when it resolves.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Sampling } from "../core/devicePort.ts";
import { DeviceFailedError, OverloadedError, PitcherError, ShuttingDownError, SloWaitExceededError } from "../core/errors.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { FakeCall, FakeDeviceOptions } from "../../test/fakes/FakeDevice.ts";
import { FAKE_END_TOKEN, FakeDevice, hashedToken } from "../../test/fakes/FakeDevice.ts";
import { FakeClock } from "../../test/fakes/FakeClock.ts";
import { FakeHostTier } from "../../test/fakes/FakeHostTier.ts";
import { FakeTimers } from "../../test/fakes/FakeTimers.ts";
import { fakeCodec, fakeCodecs } from "../../test/fakes/fakeCodecs.ts";
import { servedModel } from "../../test/fakes/servedModel.ts";
import { Scheduler, type SchedulerOptions } from "../scheduler/Scheduler.ts";
import { Pool, type CommandRecord, type DeviceEvent, type GenerationParams, type RequestOutcome, type RestartBackoff } from "./Pool.ts";
import { PoolServing } from "./Serving.ts";

const MB = 1e6;
const greedy: Sampling = { temperature: 0 };
const prompt = [5, 6, 7, 8];

interface Setup {
  models?: ServedModel[];
  devices?: number;
  memoryBytes?: number;
  scheduler?: Partial<SchedulerOptions>;
  restartBackoff?: Partial<RestartBackoff>;
  script?: FakeDeviceOptions["script"];
}

async function makePool(o: Setup = {}) {
  const clock = new FakeClock();
  const hostTier = new FakeHostTier();
  const models = o.models ?? [servedModel("m")];
  const devices = Array.from({ length: o.devices ?? 1 }, (_, i) => new FakeDevice(`dev${i}`, { hostTier, clock, models, ...(o.script ? { script: o.script } : {}) }));
  await Promise.all(devices.map((d) => d.start()));
  const scheduler = new Scheduler(
    models.map((m) => m.profile),
    devices.map((d) => ({ id: d.id, memoryBytes: o.memoryBytes ?? 200 * MB })),
    { admissionTtftFactor: 0, ...o.scheduler },
  );
  // Restart retries and start time-outs wait for the test to fire them: no real timer runs.
  const timers = new FakeTimers();
  const pool = new Pool(scheduler, devices, new Map(models.map((m) => [m.id, m])), fakeCodecs, {
    now: clock.now,
    setTimer: timers.setTimer,
    ...(o.restartBackoff ? { restartBackoff: o.restartBackoff } : {}),
  });
  const commands: CommandRecord[] = [];
  const outcomes: RequestOutcome[] = [];
  pool.on("command", (c) => commands.push(c));
  pool.on("outcome", (x) => outcomes.push(x));
  const generate = (requestId: string, over: Partial<GenerationParams> = {}) =>
    pool.generate({ requestId, modelId: models[0]!.id, promptTokens: prompt, maxTokens: 10, sampling: greedy, stop: [], ...over });
  const deviceEvents: DeviceEvent[] = [];
  pool.on("device", (e) => deviceEvents.push(e));
  return { pool, devices, dev: devices[0]!, clock, hostTier, timers, commands, outcomes, deviceEvents, generate };
}

/** Let every pending promise run: fake devices use no timers, so the pool is quiet after this. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What the fake model of `fingerprint` says after `prompt`, `n` tokens, never preempted. */
function expectedTokens(fingerprint: string, n: number, sampling = greedy, from = prompt): number[] {
  const history = [...from];
  const out = [hashedToken(fingerprint, history, sampling, 0)];
  while (out.length < n) {
    history.push(out.at(-1)!);
    out.push(hashedToken(fingerprint, history, sampling, out.length));
  }
  return out;
}

const textOf = (tokens: number[]) => fakeCodec.detokenize(tokens);
const released = (calls: FakeCall[], id: string) => calls.some((c) => (c.op === "release" && c.requestIds.includes(id)) || c.release.includes(id));

describe("Pool on fake devices", () => {
  it("runs a request to completion with the device's tokens and reports its outcome", async () => {
    const { pool, generate, outcomes } = await makePool();
    const r = await generate("r1");
    assert.equal(r.finishReason, "length");
    assert.equal(r.completionTokens, 10);
    assert.equal(r.promptTokens, prompt.length);
    assert.equal(r.text, textOf(expectedTokens("m", 10)));
    assert.equal(pool.activeRequests, 0);
    assert.equal(outcomes.length, 1);
    assert.equal(outcomes[0]!.reason, "length");
    assert.equal(outcomes[0]!.tokenTimesMs.length, 10);
    await settled();
    assert.equal(pool.snapshot().devices[0]!.kvBytes, 0);
  });

  it("streams one delta per token, adding up to the text", async () => {
    const { generate } = await makePool();
    const deltas: string[] = [];
    const r = await generate("s1", { onDelta: (d) => deltas.push(d) });
    assert.ok(deltas.length >= 10);
    assert.equal(deltas.join(""), r.text);
  });

  it("seeded sampling gives the seed's tokens", async () => {
    const { generate } = await makePool();
    const sampling = { temperature: 0.8, seed: 3 };
    const r = await generate("seeded", { sampling });
    assert.equal(r.text, textOf(expectedTokens("m", 10, sampling)));
  });

  it("stops at an end token the device marks; the device drops the sequence", async () => {
    const { generate, dev, outcomes } = await makePool({ script: (s) => (s.requestId === "e1" && s.tokenIndex === 4 ? FAKE_END_TOKEN : undefined) });
    const r = await generate("e1");
    assert.equal(r.finishReason, "stop");
    assert.equal(r.text, textOf(expectedTokens("m", 4)));
    assert.equal(r.completionTokens, 5, "the end token counts as generated");
    assert.equal(outcomes[0]!.tokenTimesMs.length, 4, "the end token is not streamed");
    await settled();
    assert.ok(released(dev.calls, "e1"));
    assert.deepEqual(dev.sequences(), []);
  });

  it("stops at a stop string, cutting the text before it", async () => {
    const { generate } = await makePool({ script: (s) => (s.tokenIndex === 3 ? 777 : undefined) });
    const r = await generate("st1", { stop: [" t777"] });
    assert.equal(r.finishReason, "stop");
    assert.equal(r.text, textOf(expectedTokens("m", 3)));
  });

  it("a cancelled request leaves the running decode and its KV is released", async () => {
    const { pool, generate, dev } = await makePool();
    const hold = dev.hold("decode", { beforeStep: 1 });
    const ac = new AbortController();
    const doomed = generate("c1", { maxTokens: 50, signal: ac.signal });
    await hold.reached;
    ac.abort();
    await assert.rejects(doomed, (e) => e instanceof PitcherError && e.code === "cancelled");
    assert.ok(dev.calls.some((c) => c.op === "cancel" && c.requestIds.includes("c1")));
    hold.release();
    await settled();
    assert.ok(released(dev.calls, "c1"));
    assert.deepEqual(dev.sequences(), []);
    assert.equal(pool.snapshot().devices[0]!.kvBytes, 0);
    assert.equal(pool.activeRequests, 0);
  });

  it("preemption parks a request's KV in the host tier and resumes it with the same tokens", async () => {
    // One device with room for one model: an urgent request for the other model preempts.
    const models = [servedModel("long", {}, { fingerprint: "long" }), servedModel("urgent", { slo: { ttftMs: 400, tbtMs: 100 } }, { fingerprint: "urgent" })];
    const { generate, dev, commands } = await makePool({ models, memoryBytes: 100 * MB });
    const hold = dev.hold("decode", { modelId: "long", beforeStep: 1 });
    const long = generate("L", { maxTokens: 300 });
    await hold.reached;
    const urgent = generate("U", { modelId: "urgent", maxTokens: 4 });
    hold.release();
    const [l, u] = await Promise.all([long, urgent]);
    assert.equal(u.text, textOf(expectedTokens("urgent", 4)));
    assert.equal(l.completionTokens, 300);
    assert.equal(l.text, textOf(expectedTokens("long", 300)));
    const kinds = commands.map((c) => `${c.kind}:${c.modelId ?? ""}`);
    const out = kinds.indexOf("swapOut:long");
    const loadUrgent = kinds.indexOf("load:urgent", out);
    const reload = kinds.indexOf("load:long", loadUrgent);
    const back = kinds.indexOf("swapIn:long", reload);
    assert.ok(out >= 0 && loadUrgent > out && reload > loadUrgent && back > reload, kinds.join(" "));
  });

  it("new work ends a long decode planned while nothing waited", async () => {
    const { generate, dev, commands } = await makePool({ scheduler: { idleDecodeSliceMs: 5000 } });
    const hold = dev.hold("decode", { beforeStep: 1 });
    const first = generate("i1", { maxTokens: 200 });
    await hold.reached;
    const second = generate("i2", { maxTokens: 5 });
    assert.ok(dev.calls.some((c) => c.op === "yield"));
    hold.release();
    await Promise.all([first, second]);
    const run = commands.find((c) => c.kind === "decode" && c.interruptible)!;
    assert.ok(run.steps! < run.plannedSteps!, `the run stopped early (${run.steps} of ${run.plannedSteps})`);
  });

  it("a device crash fails only that device's requests; the device restarts and serves again", async () => {
    // Two devices with room for one model each, and a request for each model.
    const models = [servedModel("a", {}, { fingerprint: "a" }), servedModel("b", {}, { fingerprint: "b" })];
    const { pool, generate, devices } = await makePool({ models, devices: 2, memoryBytes: 100 * MB });
    const events: string[] = [];
    pool.on("device", (e) => events.push(`${e.deviceId}:${e.event}`));
    const hold = devices[0]!.hold("decode", { beforeStep: 1 });
    const doomed = generate("x1", { maxTokens: 50 });
    await hold.reached;
    const other = generate("x2", { modelId: "b", maxTokens: 20 });
    await settled();
    assert.ok(
      devices[1]!.calls.some((c) => c.op === "prefill" && c.requestIds.includes("x2")),
      "x2 runs on dev1",
    );
    devices[0]!.crash("native abort");
    await assert.rejects(doomed, (e) => e instanceof DeviceFailedError && /dev0 failed \(native abort\)/.test(e.message));
    const r = await other;
    assert.equal(r.text, textOf(expectedTokens("b", 20)));
    await settled();
    assert.deepEqual(events, ["dev0:crashed", "dev0:restarted"]);
    assert.equal(devices[0]!.up, true);
    const hold2 = devices[1]!.hold("prefill");
    const again = generate("x3", { maxTokens: 5 });
    await settled();
    hold2.release();
    assert.equal((await again).text, textOf(expectedTokens("a", 5)));
    assert.ok(
      devices[0]!.calls.some((c) => c.op === "prefill" && c.requestIds.includes("x3")),
      "the restarted device served x3",
    );
  });

  it("a request parked in the host tier survives a crash of its device", async () => {
    const models = [servedModel("long", {}, { fingerprint: "long" }), servedModel("urgent", { slo: { ttftMs: 400, tbtMs: 100 } }, { fingerprint: "urgent" })];
    const { generate, dev, hostTier, pool } = await makePool({ models, memoryBytes: 100 * MB });
    const decoding = dev.hold("decode", { modelId: "long", beforeStep: 1 });
    const loading = dev.hold("load", { modelId: "urgent" });
    const long = generate("P", { maxTokens: 300 });
    await decoding.reached;
    const urgent = generate("U", { modelId: "urgent", maxTokens: 4 });
    decoding.release();
    await loading.reached;
    assert.ok(hostTier.has("P"), "P is parked while the urgent model loads");
    dev.crash();
    const [l, u] = await Promise.all([long, urgent]);
    assert.equal(l.text, textOf(expectedTokens("long", 300)));
    assert.equal(u.text, textOf(expectedTokens("urgent", 4)));
    assert.equal(hostTier.size, 0);
    assert.equal(pool.activeRequests, 0);
  });

  it("a parked state that fails its check fails its request with kv_restore_failed", async () => {
    const models = [servedModel("long", {}, { fingerprint: "long" }), servedModel("urgent", { slo: { ttftMs: 400, tbtMs: 100 } }, { fingerprint: "urgent" })];
    const { generate, dev, hostTier } = await makePool({ models, memoryBytes: 100 * MB });
    const decoding = dev.hold("decode", { modelId: "long", beforeStep: 1 });
    const loading = dev.hold("load", { modelId: "urgent" });
    const victim = generate("V", { maxTokens: 300 });
    await decoding.reached;
    const urgent = generate("U", { modelId: "urgent", maxTokens: 4 });
    decoding.release();
    await loading.reached;
    hostTier.corrupt("V");
    loading.release();
    await assert.rejects(victim, (e) => e instanceof PitcherError && e.code === "kv_restore_failed" && /corrupt/.test(e.message));
    await urgent;
    assert.equal(hostTier.has("V"), false, "the pool discarded what the failed request left in the tier");
  });

  it("drain waits for running requests and refuses new ones", async () => {
    const { pool, generate, dev } = await makePool();
    const hold = dev.hold("decode", { beforeStep: 1 });
    const running = generate("d1", { maxTokens: 20 });
    await hold.reached;
    let drained = false;
    const drain = pool.drain().then(() => (drained = true));
    await settled();
    assert.equal(drained, false);
    assert.equal(pool.isDraining, true);
    await assert.rejects(generate("d2"), ShuttingDownError);
    hold.release();
    await drain;
    assert.equal((await running).completionTokens, 20);
    await pool.close();
    assert.equal(dev.up, false);
  });

  it("refuses a request whose predicted wait exceeds its TTFT target, with a retry hint", async () => {
    const model = servedModel("m", { slo: { ttftMs: 50, tbtMs: 100 } });
    const { pool, generate, outcomes } = await makePool({ models: [model], scheduler: { admissionTtftFactor: 1 } });
    await assert.rejects(generate("o1", { maxTokens: 100 }), (e) => e instanceof OverloadedError && e.status === 429);
    assert.equal(outcomes[0]!.reason, "rejected");
    assert.equal(pool.activeRequests, 0);
  });
});

describe("Pool: the late-wait cap", () => {
  it("ends a request that waited past the cap without starting: 503 slo_wait_exceeded with a retry time; the running one finishes", async () => {
    // One slot and a request holding it for ≈1 s: the next waits past 200 ms + 0.5 × 200 ms.
    const model = servedModel("m", { maxBatch: 1, slo: { ttftMs: 200, tbtMs: 100 } });
    const { pool, generate, outcomes, dev } = await makePool({ models: [model], scheduler: { policy: "request", lateWaitCapFactor: 0.5 } });
    const running = generate("long", { maxTokens: 100 });
    const waiting = generate("late", { maxTokens: 5 });
    await assert.rejects(waiting, (e) => {
      assert.ok(e instanceof SloWaitExceededError);
      assert.equal(e.status, 503);
      assert.equal(e.code, "slo_wait_exceeded");
      assert.ok(e.retryAfterSeconds >= 1);
      assert.match(e.message, /waited \d+ ms for a device without starting, past its TTFT target of 200 ms/);
      return true;
    });
    assert.ok(!dev.calls.some((c) => c.op === "prefill" && c.requestIds.includes("late")), "the late request never took the device");
    assert.equal((await running).completionTokens, 100);
    const late = outcomes.find((o) => o.id === "late")!;
    assert.equal(late.reason, "error");
    assert.deepEqual(late.tokenTimesMs, []);
    assert.equal(pool.activeRequests, 0);
  });
});

describe("Pool: bringing back a device that will not start", () => {
  const failures = (events: DeviceEvent[]) => events.filter((e) => e.event === "restart_failed");

  it("retries with exponential backoff to a cap, one attempt at a time, and reports the device down", async () => {
    const { pool, dev, timers, deviceEvents } = await makePool();
    dev.failStarts(Infinity, "CUDA out of memory");
    dev.crash("native abort");
    await settled();
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 9; attempt++) {
      const [e] = failures(deviceEvents).slice(attempt - 1);
      assert.ok(e, `attempt ${attempt} failed and was reported`);
      assert.equal(e.attempt, attempt);
      assert.equal(e.detail, "CUDA out of memory");
      assert.equal(timers.pending.length, 1, "one retry waits, no other attempt runs");
      assert.equal(timers.pending[0]!.delayMs, e.retryInMs);
      delays.push(e.retryInMs!);
      // A death reported again meanwhile is the same one: no second restart starts.
      await pool.recover(dev.id, "reported again");
      assert.equal(dev.startCalls, 1 + attempt, "one start at setup, then one per attempt");
      timers.fireOnly();
      await settled();
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.deepEqual(
      failures(deviceEvents).map((e) => e.state),
      ["restarting", "restarting", "restarting", "restarting", "restarting", "restarting", "down", "down", "down", "down"],
    );
    assert.deepEqual(deviceEvents[0], { deviceId: "dev0", event: "crashed", detail: "native abort" });
    assert.equal(dev.up, false);
    assert.deepEqual(pool.deviceStatus("dev0"), { state: "down", restartAttempts: 10, lastError: "CUDA out of memory", nextRetryInMs: 30000 });
    // Closing the pool ends the retries.
    await pool.close();
    assert.equal(timers.pending.length, 0);
  });

  it("a device that starts after failing three times comes back and runs the work that waited for it", async () => {
    const { pool, dev, timers, deviceEvents, generate } = await makePool();
    dev.failStarts(3);
    dev.crash();
    await settled();
    // Submitted while the only device is down: it waits, it is not lost.
    const waiting = generate("w1", { maxTokens: 6 });
    for (let i = 0; i < 3; i++) {
      assert.equal(pool.deviceStatus("dev0").state, "restarting");
      timers.fireOnly();
      await settled();
    }
    assert.deepEqual(
      deviceEvents.map((e) => `${e.event}:${e.attempt ?? ""}`),
      ["crashed:", "restart_failed:1", "restart_failed:2", "restart_failed:3", "restarted:4"],
    );
    assert.equal(dev.up, true);
    assert.deepEqual(pool.deviceStatus("dev0"), { state: "up", restartAttempts: 0, lastError: null, nextRetryInMs: null });
    assert.equal((await waiting).text, textOf(expectedTokens("m", 6)));
    assert.equal((await generate("w2", { maxTokens: 4 })).text, textOf(expectedTokens("m", 4)));
    assert.equal(timers.pending.length, 0, "no retry left behind");
  });

  it("a device that keeps failing is reported in health, and its model's requests complete on the other device", async () => {
    // Room for one model per device: a is on dev0, b on dev1, until dev0 dies for good.
    const models = [servedModel("a", {}, { fingerprint: "a" }), servedModel("b", {}, { fingerprint: "b" })];
    const { pool, devices, timers, generate } = await makePool({ models, devices: 2, memoryBytes: 100 * MB });
    const [dev0, dev1] = [devices[0]!, devices[1]!];
    const hold = dev0.hold("decode", { beforeStep: 1 });
    const doomed = generate("k1", { maxTokens: 50 });
    await hold.reached;
    assert.equal((await generate("k2", { modelId: "b", maxTokens: 5 })).text, textOf(expectedTokens("b", 5)));
    dev0.failStarts(Infinity, "no device memory");
    dev0.crash("native abort");
    await assert.rejects(doomed, DeviceFailedError);
    for (let i = 0; i < 8; i++) {
      timers.fireOnly();
      await settled();
    }
    const serving = new PoolServing(pool, fakeCodecs);
    const health = serving.health().devices;
    assert.deepEqual(health[0], { id: "dev0", up: false, state: "down", restartAttempts: 9, lastError: "no device memory", nextRetryInMs: 30000, residentModels: [] });
    assert.equal(health[1]!.up, true);
    assert.equal(health[1]!.state, "up");
    // Model a now lives on dev1 (b makes room); requests for both complete there.
    const [a, b] = await Promise.all([generate("k3", { maxTokens: 8 }), generate("k4", { modelId: "b", maxTokens: 3 })]);
    assert.equal(a.text, textOf(expectedTokens("a", 8)));
    assert.equal(b.text, textOf(expectedTokens("b", 3)));
    assert.ok(
      dev1.calls.some((c) => c.op === "prefill" && c.requestIds.includes("k3")),
      "dev1 served model a",
    );
    assert.equal(dev0.up, false);
    await pool.close();
  });

  it("a start that hangs times out and counts as a failed attempt", async () => {
    const { pool, dev, timers, deviceEvents } = await makePool({ restartBackoff: { startTimeoutMs: 5000 } });
    let hung = true;
    const start = dev.start.bind(dev);
    dev.start = () => (hung ? new Promise<void>(() => {}) : start());
    dev.crash();
    await settled();
    assert.deepEqual(
      timers.pending.map((t) => t.delayMs),
      [5000],
      "the start's time-out waits",
    );
    timers.fireOnly();
    await settled();
    assert.deepEqual(failures(deviceEvents)[0], {
      deviceId: "dev0",
      event: "restart_failed",
      detail: "start timed out after 5 s",
      attempt: 1,
      retryInMs: 500,
      state: "restarting",
    });
    hung = false;
    timers.fireOnly();
    await settled();
    assert.equal(deviceEvents.at(-1)!.event, "restarted");
    assert.equal(pool.deviceStatus("dev0").state, "up");
  });
});
