/** The bench-side scenario plumbing (bench/scenarios.ts, bench/knee.ts, bench/peer.ts's guard). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { Command } from "commander";
import { kneeOf } from "../bench/knee.ts";
import { applyScenarioDefaults, L_SHAPE, SCENARIO_DEFAULTS } from "../bench/scenarios.ts";
import { scenarioWorkload } from "../bench/scenarioWorkload.ts";
import { standInParameterCount } from "../src/engine/gguf/writeStandInModel.ts";
import { generateWorkload } from "../src/workload/workload.ts";

test("kneeOf interpolates the 90% crossing and says when the sweep misses it", () => {
  const pts = [
    { rate: 3, attainment: 0.995 },
    { rate: 5, attainment: 0.929 },
    { rate: 6, attainment: 0.747 },
  ];
  assert.equal(kneeOf(pts), (5 + (0.029 / 0.182) * 1).toFixed(2));
  assert.equal(kneeOf([{ rate: 2, attainment: 0.5 }]), "< 2");
  assert.equal(
    kneeOf([
      { rate: 2, attainment: 1 },
      { rate: 4, attainment: 0.95 },
    ]),
    "≥ 4",
  );
});

test("scenario L's defaults apply only to options left at their script default", () => {
  const program = new Command()
    .option("--memory <size>", "", "80MB")
    .option("--output <n>", "", "32")
    .option("--output-cv <cv>", "", "0")
    .option("--arrival-cv <cv>", "", "1")
    .option("--popularity <kind>", "", "uniform")
    .option("--seed <n>", "", "7")
    .option("--duration <s>", "", "60")
    .parse(["--output", "128"], { from: "user" });
  const opts = program.opts();
  applyScenarioDefaults("L", opts, (k) => program.getOptionValueSource(k));
  assert.equal(opts.output, "128");
  assert.equal(opts.memory, SCENARIO_DEFAULTS.L.memory);
  assert.equal(opts.popularity, "zipf");
  // The workload it yields: Zipf popularity, bursty gamma arrivals, log-normal long outputs.
  const spec = scenarioWorkload(opts, 2);
  assert.deepEqual(spec.arrivals, { kind: "gamma", cv: 3 });
  assert.deepEqual(spec.popularity, { kind: "zipf", s: 1 });
  const reqs = generateWorkload(spec, ["a", "b", "c", "d", "e", "f"]);
  const counts = ["a", "b", "c", "d", "e", "f"].map((m) => reqs.filter((r) => r.modelId === m).length);
  assert.ok(counts[0]! > counts[5]!, `Zipf: the first model is the hottest (${counts})`);
  assert.ok(new Set(reqs.map((r) => r.outputTokens)).size > 10, "output lengths vary");
});

test("scenario L's stand-in is ≈400M parameters with a 128k vocabulary", () => {
  const params = standInParameterCount({ ...L_SHAPE, name: "l", seed: 1 });
  assert.ok(params > 380e6 && params < 420e6, String(params));
  assert.equal(L_SHAPE.vocabularySize, 128000);
});

test("bench/peer.ts without a built llama-server says how to build it", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "bench/peer.ts", "--llama-server", "/nonexistent/llama-server"], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bash bench\/buildLlamaServer\.sh/);
});
