// `pitcher profile` on a real device, then `pitcher plan --profile` and `simulate --profile` on its output.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { parseConfig } from "../src/config/loadConfig.ts";
import { runProfile } from "../src/cli/profile.ts";
import { machineProfileSchema, measuredCosts, type MachineProfile } from "../src/sim/machineProfile.ts";
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
    for (const m of profile.models) {
      assert.deepEqual(m.slo, { ttftMs: 1500, tbtMs: 120 });
      assert.deepEqual([...new Set(m.samples.decode.map((s) => s[0]))].sort(), [1, 2], "batch sizes 1 and 2 (the model's max)");
      assert.ok(new Set(m.samples.decode.map((s) => s[1])).size >= 2, "several contexts");
      assert.ok(new Set(m.samples.prefill.map((s) => s[0])).size >= 2 && m.samples.prefill.some((s) => s[1]! > 0), "chunk sizes and offsets");
      assert.equal(m.samples.load.length, 3);
      assert.ok(m.samples.kvSwap.length >= 2 && m.samples.kvSwap.every((s) => s[1]! > 0 && s[2]! > 0));
      assert.ok(m.loadMs > 0 && m.prefill.perTokenMs > 0);
      // The fitted line reproduces the measurements it came from.
      const costs = measuredCosts(profile);
      for (const [b, c, ms] of m.samples.decode) assert.ok(Math.abs(costs.decodeStepMs(m.id, b!, c!) - ms!) / ms! < 0.6, `decode b=${b} c=${c}: ${ms} ms`);
      assert.ok(m.decode.medianError < 0.3 && m.prefill.medianError < 0.3, `fit errors ${m.decode.medianError} ${m.prefill.medianError}`);
    }
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
