import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { generateWorkload, workloadSchema } from "../workload/workload.ts";
import { readTrace } from "../workload/trace.ts";
import { findAccelerator } from "./accelerators.ts";
import { medianErrors, readProfiles } from "./calibration.ts";
import { decodeStepMs, prefillMs } from "./costModel.ts";
import { findModelPreset, type SimModelSpec } from "./modelPresets.ts";
import { planPolicy } from "./planner.ts";
import { buildReport } from "./report.ts";
import { analyticCosts } from "./SimCosts.ts";
import { machineProfileSchema, measuredCosts, type MachineProfile } from "./machineProfile.ts";
import { simulate } from "./Simulation.ts";
import { simulationReportHtml } from "../views/simulationReportHtml.ts";
import { sloReport } from "../core/slo.ts";
import { SIM_POLICIES, type SimPolicy } from "./Simulation.ts";

const SHARED = path.resolve(import.meta.dirname, "../../../shared/data");
const H800 = findAccelerator("H800")!;
const slo = () => ({ ttftMs: 10_000, tbtMs: 100 });

function market(): SimModelSpec[] {
  const out: SimModelSpec[] = [];
  const add = (preset: string, n: number) => {
    for (let i = 1; i <= n; i++) out.push({ ...findModelPreset(preset)!, id: `${preset}-${i}` });
  };
  add("qwen2.5-7b", 4);
  add("qwen3-30b-a3b", 2);
  add("llama-2-13b", 2);
  return out;
}

function workload(models: SimModelSpec[], over: Record<string, unknown> = {}) {
  return generateWorkload(
    workloadSchema.parse({
      seed: 11,
      durationSeconds: 120,
      ratePerSecond: 3,
      popularity: { kind: "zipf", s: 1.2 },
      inputTokens: { mean: 400, cv: 1, max: 4000 },
      outputTokens: { mean: 120, cv: 1, max: 800 },
      ...over,
    }),
    models.map((m) => m.id),
  );
}

describe("cost model", () => {
  it("predicts measured vLLM steps: a few rows of the profiles", () => {
    const qwen = findModelPreset("qwen2.5-7b")!;
    // qwen2_5_7b on H800: decode batch 1 at 16 tokens 9.6 ms; prefill 4096 tokens 103 ms.
    const within = (pred: number, measured: number, tol: number) => assert.ok(Math.abs(pred - measured) / measured < tol, `${pred} vs ${measured}`);
    within(decodeStepMs(H800, qwen, 1, 16), 9.586, 0.2);
    within(prefillMs(H800, qwen, 4096, 1), 102.9, 0.2);
    within(decodeStepMs(H800, qwen, 200, 32), 28.15, 0.3);
  });

  it("has a median absolute error of at most 15% on decode and prefill for every profiled accelerator", () => {
    const e = medianErrors(readProfiles(path.join(SHARED, "vllm-step-profiles.csv")));
    for (const [device, err] of Object.entries(e.byDevice)) {
      assert.ok(err.decode <= 0.15, `${device} decode ${err.decode}`);
      assert.ok(err.prefill <= 0.15, `${device} prefill ${err.prefill}`);
    }
    assert.deepEqual(Object.keys(e.byDevice).sort(), ["A10", "A100", "H100", "H800"]);
  });

  it("gets the H20 asymmetry right: prefill ~4x slower than H800, decode about equal", () => {
    const m = findModelPreset("qwen2.5-14b")!;
    const h20 = findAccelerator("H20")!;
    const pre = prefillMs(h20, m, 4096) / prefillMs(H800, m, 4096);
    const dec = decodeStepMs(h20, m, 1, 512) / decodeStepMs(H800, m, 1, 512);
    assert.ok(pre > 3 && pre < 7, `prefill ratio ${pre}`);
    assert.ok(dec > 0.7 && dec < 1.2, `decode ratio ${dec}`);
  });
});

describe("simulation", () => {
  it("is deterministic: the same seed gives a byte-identical report", () => {
    const models = market();
    const once = () => {
      const r = simulate({ costs: analyticCosts(H800, models), slo, devices: 3, policy: "token", recordTimeline: true }, workload(models));
      return JSON.stringify(buildReport({ accelerator: "H800", policy: "token", devices: 3 }, r, [], 60_000));
    };
    assert.equal(once(), once());
  });

  it("writes a self-contained HTML report: charts inlined, no network", () => {
    const models = market();
    const r = simulate({ costs: analyticCosts(H800, models), slo, devices: 3, policy: "token", recordTimeline: true }, workload(models));
    const html = simulationReportHtml(
      buildReport({ accelerator: "H800", policy: "token", devices: 3 }, r, [{ devices: 3, attainment: r.report.attainment, goodput: r.report.goodput }], 60_000),
    );
    assert.match(html, /Chart\.js v4/);
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=["']?https?:/);
    assert.match(html, /id="timeline"/);
    const data = JSON.parse(/<script id="data" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]!);
    assert.ok(data.timeline.length > 0 && data.timeline.every((e: { startMs: number }) => e.startMs < 60_000));
  });

  it("never lowers attainment when devices are added (seeded sweep)", () => {
    const models = market();
    const reqs = workload(models, { ratePerSecond: 4 });
    let last = -1;
    for (let n = 1; n <= 6; n++) {
      const a = simulate({ costs: analyticCosts(H800, models), slo, devices: n, policy: "token" }, reqs).report.attainment;
      assert.ok(a >= last - 0.005, `attainment fell from ${last} to ${a} at ${n} devices`);
      last = a;
    }
    assert.ok(last > 0.9);
  });

  it("token pooling needs no more devices than request-level swapping on a skewed market", () => {
    const models = market();
    const input = { costs: analyticCosts(H800, models), slo, requests: workload(models), target: 0.95, maxDevices: 16 };
    const token = planPolicy(input, "token");
    const request = planPolicy(input, "request");
    assert.ok(token.minDevices !== null && request.minDevices !== null);
    assert.ok(token.minDevices! <= request.minDevices!, `token ${token.minDevices} vs request ${request.minDevices}`);
  });

  it("dedicated gives each device exactly one model, and every model at least one device", () => {
    const models = market();
    const input = { costs: analyticCosts(H800, models), slo, requests: workload(models), target: 0.95, maxDevices: 8 };
    const plan = planPolicy(input, "dedicated");
    assert.equal(Object.keys(plan.perModel!).length, models.length);
    assert.ok(Object.values(plan.perModel!).every((n) => n >= 1));
    const r = simulate({ costs: analyticCosts(H800, models), slo, devices: 0, policy: "dedicated", dedicated: plan.perModel!, recordTimeline: true }, input.requests);
    const byDevice = new Map<number, Set<string>>();
    for (const e of r.timeline) if (e.model) byDevice.set(e.device, (byDevice.get(e.device) ?? new Set()).add(e.model));
    for (const [d, ms] of byDevice) assert.equal(ms.size, 1, `device ${d} ran ${[...ms]}`);
  });

  it("dedicated: a hot model's attainment rises with its devices (1, 2, 4), each of which loads it", () => {
    const hot = { ...findModelPreset("qwen2.5-7b")!, id: "hot" };
    // 40 req/s of one 7B model: more than one H800's 64 slots hold.
    const reqs = workload([hot], {
      seed: 3,
      durationSeconds: 20,
      ratePerSecond: 40,
      popularity: { kind: "uniform" },
      inputTokens: { mean: 600, cv: 1, max: 4000 },
      outputTokens: { mean: 250, cv: 1, max: 1000 },
    });
    const at = (n: number) => simulate({ costs: analyticCosts(H800, [hot]), slo, devices: n, policy: "dedicated", dedicated: { hot: n }, recordTimeline: true }, reqs);
    const runs = [1, 2, 4].map(at);
    const [one, two, four] = runs.map((r) => r.report.attainment);
    assert.ok(one! < 0.9, `one device is overloaded (${one})`);
    assert.ok(two! > one!, `two devices beat one (${two} vs ${one})`);
    assert.ok(four! >= two! && four! > 0.99, `four devices meet the SLO (${four})`);
    const devicesThatLoaded = runs.map((r) => new Set(r.timeline.filter((e) => e.kind === "load").map((e) => e.device)).size);
    assert.deepEqual(devicesThatLoaded, [1, 2, 4]);
  });

  it("prices loads at a given host-link bandwidth when that is slower than the cost model", () => {
    const models = market().slice(0, 2);
    const reqs = workload(models, { durationSeconds: 20 });
    const loads = (loadGBps?: number) =>
      simulate({ costs: analyticCosts(H800, models), slo, devices: 1, policy: "serverless", recordTimeline: true, ...(loadGBps ? { loadGBps } : {}) }, reqs).timeline.filter(
        (e) => e.kind === "load",
      );
    const fast = loads();
    const slow = loads(1);
    assert.ok(fast.length > 1);
    // 7B in bf16 is ≈15 GB: ≈15 s at 1 GB/s, against well under a second from the cost model.
    for (const e of slow) assert.ok(e.endMs - e.startMs > 10_000, `load took ${e.endMs - e.startMs} ms`);
    for (const e of fast) assert.ok(e.endMs - e.startMs < 1_000);
  });

  it("counts the requests the late-wait cap ends as misses; they produce no tokens", () => {
    const models = market();
    const reqs = workload(models, { durationSeconds: 60 });
    const run = (lateWaitCapFactor: number) => simulate({ costs: analyticCosts(H800, models), slo, devices: 1, policy: "token", scheduler: { lateWaitCapFactor } }, reqs);
    const uncapped = run(Infinity);
    const capped = run(0);
    const expired = capped.traces.filter((t) => t.tokenTimesMs.length === 0);
    assert.ok(expired.length > 0, "one device is overloaded: some requests waited past their deadline");
    assert.equal(uncapped.traces.filter((t) => t.tokenTimesMs.length === 0).length, 0, "without the cap every request is served, however late");
    for (const t of expired) assert.equal(t.ok, false);
    assert.equal(capped.summary.met.length, reqs.length);
    const met = capped.summary.met.filter(Boolean).length;
    assert.equal(capped.report.attainment, met / reqs.length);
    assert.ok(met <= reqs.length - expired.length);
  });

  it("replays the shared Azure conversation trace", () => {
    const models = market();
    const reqs = readTrace({
      file: path.join(SHARED, "azure-llm-inference-2023-conv.csv"),
      models: models.map((m) => m.id),
      popularity: { kind: "zipf", s: 1 },
      seed: 1,
      durationSeconds: 120,
    });
    // The trace averages ~5.5 req/s over the hour; its first two minutes hold 456 requests.
    assert.equal(reqs.length, 456);
    assert.deepEqual([reqs[0]!.inputTokens, reqs[0]!.outputTokens], [374, 44]);
    assert.ok(reqs.every((r, i) => i === 0 || r.arrivalMs >= reqs[i - 1]!.arrivalMs));
    const r = simulate({ costs: analyticCosts(H800, models), slo, devices: 6, policy: "token" }, reqs);
    assert.equal(r.traces.length, reqs.length);
    assert.ok(r.report.attainment > 0.5);
  });
});

describe("machine profile costs", () => {
  const line = { fixedMs: 1, perSequenceMs: 2, perContextTokenMs: 0.001, medianError: 0 };
  const profile = (slowdown?: number): MachineProfile =>
    machineProfileSchema.parse({
      kind: "pitcher-machine-profile",
      version: 1,
      id: "test-machine",
      measuredAt: "2026-01-01T00:00:00Z",
      host: { cpu: "test", cores: 2, memoryBytes: 1e9 },
      devices: { count: 2, threadsPerDevice: 1, gpu: false, memoryBytes: 80e6 },
      server: { policy: "token", prefillChunkTokens: 64, maxGroupSize: 8, maxQuotaMs: 4000, admissionTtftFactor: 0, maxBatch: 4, contextTokens: 1024 },
      models: ["m0", "m1", "m2"].map((id) => ({
        id,
        weightBytes: 60e6,
        kvBytesPerToken: 8192,
        contextTokens: 1024,
        maxBatch: 4,
        slo: { ttftMs: 2000, tbtMs: 100 },
        loadMs: 200,
        evictMs: 5,
        decode: line,
        prefill: { fixedMs: 1, perTokenMs: 0.5, perTokenContextMs: 0, medianError: 0 },
        kvSwap: { fixedMs: 1, perTokenMs: 0.01, medianError: 0 },
        samples: { decode: [], prefill: [], load: [], evict: [], kvSwap: [] },
      })),
      ...(slowdown ? { contention: { modelId: "m0", busyDevices: 2, soloStepMs: 3, sharedStepMs: 3 * slowdown, slowdown } } : {}),
    });

  it("prices commands with the fitted lines and the server's settings", () => {
    const c = measuredCosts(profile());
    assert.equal(c.decodeStepMs("m0", 2, 100), 1 + 2 * 2 + 0.001 * 2 * 100);
    assert.equal(c.prefillMs("m1", 0, 64), 1 + 0.5 * 64);
    assert.equal(c.loadMs("m2"), 200);
    assert.equal(c.memoryBytes, 80e6);
    assert.equal(c.defaults?.scheduler?.prefillChunkTokens, 64);
    assert.equal(c.contention, undefined);
  });

  it("slows commands down while the machine's other device is busy", () => {
    const c = measuredCosts(profile(1.5));
    assert.equal(c.contention!(1), 1);
    assert.equal(c.contention!(2), 1.5);
    const requests = generateWorkload(workloadSchema.parse({ seed: 5, durationSeconds: 30, ratePerSecond: 4, inputTokens: 64, outputTokens: 32 }), c.modelIds);
    const run = (p: MachineProfile) =>
      simulate({ costs: measuredCosts(p), slo: () => ({ ttftMs: 2000, tbtMs: 100 }), devices: 2, policy: "token", recordTimeline: true }, requests);
    const alone = run(profile());
    const shared = run(profile(1.5));
    const busy = (r: ReturnType<typeof run>) => r.timeline.reduce((s, e) => s + e.endMs - e.startMs, 0);
    assert.ok(busy(shared) > 1.2 * busy(alone), `busy time ${busy(shared)} vs ${busy(alone)}`);
    assert.ok(shared.report.ttftP50Ms > alone.report.ttftP50Ms);
  });
});

describe("simulation speed-ups change no figure", () => {
  const models = market();
  const costs = analyticCosts(H800, models);
  // Loaded enough that requests queue, park and miss (every code path of the aggregates).
  const reqs = workload(models, { ratePerSecond: 6, durationSeconds: 60 });
  const perModel = Object.fromEntries(models.map((m) => [m.id, 1]));
  const run = (policy: SimPolicy, extra: object = {}) => simulate({ costs, slo, devices: 1, policy, ...(policy === "dedicated" ? { dedicated: perModel } : {}), ...extra }, reqs);

  for (const policy of SIM_POLICIES) {
    it(`${policy}: the streamed report is sloReport over the full traces, and skipping idle devices plans the same`, () => {
      const r = run(policy, { recordTimeline: true });
      // One device each is plenty for dedicated; one device for all is not for the others.
      if (policy !== "dedicated") assert.ok(r.report.met < r.report.requests && r.report.met > 0, `some requests meet their SLO, some miss: ${JSON.stringify(r.report)}`);
      assert.deepEqual(r.report, sloReport(r.traces, slo, reqs[reqs.length - 1]!.arrivalMs));
      const all = run(policy, { recordTimeline: true, planEveryIdleDevice: true });
      assert.deepEqual(all.timeline, r.timeline);
      assert.deepEqual(all.report, r.report);
      const lean = run(policy, { recordTraces: false });
      assert.equal(lean.traces.length, 0);
      assert.deepEqual(lean.report, r.report);
    });
  }

  it("a run stopped once the targets are out of reach fails them run in full too", () => {
    const full = run("token");
    const target = Math.min(1, full.report.attainment + 0.05);
    const stopped = run("token", { stopBelow: { attainment: target, onScheduleScore: full.report.onScheduleScore + 0.05 } });
    assert.ok(stopped.stopped && stopped.simulatedMs < full.simulatedMs, `${stopped.stopped} ${stopped.simulatedMs} ${full.simulatedMs} ${JSON.stringify(full.report)}`);
    assert.ok(!run("token", { stopBelow: { attainment: full.report.attainment, onScheduleScore: 0 } }).stopped);
  });

  it("the planner's early stop and memo leave its answer as a full search gives it", () => {
    const input = { costs, slo, requests: reqs, target: 0.95, maxDevices: 12 };
    const plan = planPolicy(input, "token");
    // The full search: every size run to the end.
    const full = (n: number) => simulate({ costs, slo, devices: n, policy: "token" }, reqs).report;
    let n = 1;
    while (n <= 12 && full(n).attainment < 0.95) n++;
    assert.equal(plan.minDevices, n);
    assert.equal(plan.attainment, full(n).attainment);
    let nScore = 1;
    while (nScore <= 12 && full(nScore).onScheduleScore < 0.9) nScore++;
    assert.equal(plan.minDevicesOnSchedule, nScore);
  });
});
