// `pitcher profile` on a real device, then `pitcher plan --profile` and `simulate --profile` on its output.
// Measured times are noise on a shared machine: the real run is checked for shape (what was
// measured, every time finite and positive, every fitted term finite and non-negative); how
// well the fit reproduces its samples is checked on samples made from known cost lines over
// the same grid, where the answer is exact.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { parseConfig } from "../src/config/loadConfig.ts";
import { runProfile } from "../src/cli/profile.ts";
import { fitModelCosts, machineProfileSchema, measuredCosts, type MachineProfile, type ModelSamples } from "../src/sim/machineProfile.ts";
import { CACHE_DIR, ROOT, runCli as cli, standInPaths } from "./helpers.ts";

describe("pitcher profile → plan --profile", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-profile-"));
  const out = path.join(dir, "machine.json");
  let profile: MachineProfile;
  before(async () => {
    const paths = standInPaths();
    const config = parseConfig(
      {
        cacheDir: CACHE_DIR,
        devices: { count: 2, memory: "40MB" },
        defaults: { contextTokens: 256, maxBatch: 2, slo: { ttftMs: 1500, tbtMs: 120 } },
        models: [
          { id: "small-q8", path: paths["llama-5m-q8"] },
          { id: "small-f16", path: paths["llama-5m-f16"] },
        ],
      },
      "test",
    );
    profile = await runProfile({ config, out, repeats: 1, progress: false, log: () => {} });
  });

  it("measures every model over batch sizes, contexts and chunk sizes, and fits its cost lines", () => {
    const saved = machineProfileSchema.parse(JSON.parse(fs.readFileSync(out, "utf8")));
    assert.deepEqual(saved, profile);
    assert.deepEqual(
      profile.models.map((m) => m.id),
      ["small-q8", "small-f16"],
    );
    assert.equal(profile.devices.count, 2);
    assert.equal(profile.devices.memoryBytes, 40e6);
    assert.equal(profile.server.maxBatch, 2);
    // Two devices: how much one slows the other was measured on the bigger model.
    assert.equal(profile.contention?.busyDevices, 2);
    assert.ok(profile.contention!.soloStepMs > 0 && profile.contention!.slowdown >= 1);
    const isTime = (ms: number | undefined) => ms !== undefined && Number.isFinite(ms) && ms > 0;
    for (const m of profile.models) {
      assert.deepEqual(m.slo, { ttftMs: 1500, tbtMs: 120 });
      assert.deepEqual([...new Set(m.samples.decode.map((s) => s[0]))].sort(), [1, 2], "batch sizes 1 and 2 (the model's max)");
      assert.ok(new Set(m.samples.decode.map((s) => s[1])).size >= 2, "several contexts");
      assert.ok(new Set(m.samples.prefill.map((s) => s[0])).size >= 2 && m.samples.prefill.some((s) => s[1]! > 0), "chunk sizes and offsets");
      assert.equal(m.samples.load.length, 3);
      assert.equal(m.samples.evict.length, 3);
      assert.ok(m.samples.kvSwap.length >= 2);
      // Every measurement is a real wall time: finite and positive (a worker round trip at least).
      for (const row of m.samples.decode) assert.ok(isTime(row[2]), `decode ${row}`);
      for (const row of m.samples.prefill) assert.ok(isTime(row[2]), `prefill ${row}`);
      for (const row of m.samples.kvSwap) assert.ok(isTime(row[1]) && isTime(row[2]), `KV swap ${row}`);
      assert.ok(m.samples.load.every(isTime) && m.samples.evict.every(isTime));
      assert.ok(isTime(m.loadMs));
      // Every fitted term is usable: finite and non-negative. Which terms come out above zero
      // depends on the noise (a per-token prefill cost of microseconds may be fitted as 0).
      const terms = { ...prefixed("decode", m.decode), ...prefixed("prefill", m.prefill), ...prefixed("kvSwap", m.kvSwap) };
      for (const [name, v] of Object.entries(terms)) assert.ok(Number.isFinite(v) && v >= 0, `${m.id} ${name} = ${v}`);
    }
  });

  it("fits cost lines that reproduce samples on the profile's grid exactly, and their planner costs", () => {
    // Known lines over the grid the real run measured, times rounded as the profile saves them.
    const m = profile.models[0]!;
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    const decodeMs = (b: number, c: number) => 2 + 0.5 * b + 0.001 * b * c;
    const prefillMs = (n: number, c: number) => 1.5 + 0.05 * n + 0.0001 * n * (c + n / 2);
    const swapMs = (t: number) => 0.4 + 0.002 * t;
    const samples: ModelSamples = {
      decode: m.samples.decode.map(([b, c]) => [b!, c!, round(decodeMs(b!, c!))]),
      prefill: m.samples.prefill.map(([n, c]) => [n!, c!, round(prefillMs(n!, c!))]),
      load: [30, 20, 25],
      evict: [2, 1, 3],
      kvSwap: m.samples.kvSwap.map(([t]) => [t!, round(swapMs(t!)), round(swapMs(t!))]),
    };
    const fit = fitModelCosts(samples);
    assert.equal(fit.loadMs, 25, "the median load");
    assert.equal(fit.evictMs, 2);
    // Within 1 %: the samples were rounded to the microsecond, as the profile saves them.
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 0.01 * Math.abs(b) + 1e-6, `${what}: ${a} vs ${b}`);
    near(fit.decode.fixedMs, 2, "decode fixed");
    near(fit.decode.perSequenceMs, 0.5, "decode per sequence");
    near(fit.decode.perContextTokenMs, 0.001, "decode per context token");
    near(fit.prefill.perTokenMs, 0.05, "prefill per token");
    near(fit.kvSwap.perTokenMs, 0.002, "KV swap per token");
    for (const e of [fit.decode.medianError, fit.prefill.medianError, fit.kvSwap.medianError]) assert.ok(e < 1e-3, `median error ${e}`);
    // The planner prices commands with the fitted lines: they give back the samples.
    const costs = measuredCosts({ ...profile, models: [{ ...m, ...fit, samples }] });
    for (const [b, c, ms] of samples.decode) near(costs.decodeStepMs(m.id, b!, c!), ms!, `decode b=${b} c=${c}`);
    for (const [t, ms] of samples.kvSwap) near(costs.kvSwapMs(m.id, t!), ms!, `KV swap t=${t}`);
  });

  it("plans and simulates this machine from the profile", async () => {
    const plan = await cli(["plan", "--profile", out, "--rate", "2", "--duration", "20", "--max-devices", "8", "--json"]);
    assert.equal(plan.code, 0, plan.stderr);
    const json = JSON.parse(plan.stdout) as { accelerator: string; models: number; policies: { policy: string; minDevices: number | null; attainment: number }[] };
    assert.equal(json.accelerator, profile.id);
    assert.equal(json.models, 2);
    assert.deepEqual(
      json.policies.map((p) => p.policy),
      ["dedicated", "serverless", "request", "token"],
    );
    for (const p of json.policies) assert.ok(p.minDevices !== null && p.minDevices >= 1 && p.attainment >= 0.99, JSON.stringify(p));
    assert.equal(json.policies[0]!.minDevices, 2, "dedicated: one device per model");

    const sim = await cli(["simulate", "--profile", out, "--devices", "2", "--rate", "2", "--duration", "20", "--out", path.join(dir, "sim")]);
    assert.equal(sim.code, 0, sim.stderr);
    const report = JSON.parse(fs.readFileSync(path.join(dir, "sim.json"), "utf8"));
    assert.equal(report.accelerator, profile.id);
    assert.ok(report.timeline.some((e: { model?: string }) => e.model === "small-q8"));

    const both = await cli(["plan", "--profile", out, "--models", "x.yaml"]);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /--profile brings its own models/);
    const bad = await cli(["plan", "--profile", path.join(ROOT, "package.json")]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a machine profile/);
  });
});

function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [`${prefix}.${k}`, v]));
}
