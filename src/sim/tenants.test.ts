// Fair sharing between tenants, in virtual time: the simulator runs the real scheduler on
// one simulated H20 while tenant A floods it at five times its capacity (ten times its fair
// share) and tenant B sends a third of what it could. With fair sharing B keeps the
// attainment it has alone; without, A's backlog stands in front of B and B collapses.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { meetsDeadlineSlo } from "../core/slo.ts";
import { generateWorkload, type WorkloadRequest, workloadSchema } from "../workload/workload.ts";
import { findAccelerator } from "./accelerators.ts";
import { findModelPreset } from "./modelPresets.ts";
import { analyticCosts } from "./SimCosts.ts";
import { simulate } from "./Simulation.ts";

const H20 = findAccelerator("H20")!;
const MODELS = ["m1", "m2"].map((id) => ({ ...findModelPreset("qwen2.5-7b")!, id }));
const SLO = { ttftMs: 2000, tbtMs: 100 };

/** One tenant's requests: 1500-token prompts, 100-token outputs (≈3 req/s fill the device). */
function requests(seed: number, ratePerSecond: number, tenant: string, weight: number, model: string): WorkloadRequest[] {
  const spec = workloadSchema.parse({
    seed,
    durationSeconds: 60,
    ratePerSecond,
    models: [model],
    inputTokens: { mean: 1500, cv: 0.5, max: 4000 },
    outputTokens: { mean: 100, cv: 0.5, max: 300 },
  });
  return generateWorkload(spec, ["m1", "m2"]).map((r) => ({ ...r, tenant: { id: tenant, weight } }));
}

function run(reqs: WorkloadRequest[], fairShare: boolean) {
  const all = reqs.sort((a, b) => a.arrivalMs - b.arrivalMs).map((r, index) => ({ ...r, index }));
  const res = simulate({ costs: analyticCosts(H20, MODELS), slo: () => SLO, devices: 1, policy: "token", scheduler: { fairShare } }, all);
  // Traces come in arrival order, as the requests do.
  assert.equal(res.traces.length, all.length);
  const attainment = (tenant: string) => {
    const mine = res.traces.filter((_, i) => all[i]!.tenant!.id === tenant);
    return mine.filter((t) => meetsDeadlineSlo(t, SLO)).length / mine.length;
  };
  const promptTokensServed = (tenant: string, byMs: number) =>
    res.traces.reduce((s, t, i) => s + (all[i]!.tenant!.id === tenant && t.tokenTimesMs.length > 0 && t.tokenTimesMs[0]! < byMs ? all[i]!.inputTokens : 0), 0);
  return { attainment, promptTokensServed };
}

describe("fair sharing between tenants (simulated H20, token policy)", () => {
  for (const [shape, floodModel] of [
    ["one model", "m1"],
    ["a model each", "m2"],
  ] as const) {
    it(`two tenants of equal weight, one flooding at 10x its share (${shape}): the other keeps its attainment; without fair sharing it collapses`, () => {
      const polite = () => requests(2, 0.5, "B", 1, "m1");
      const flood = () => requests(3, 15, "A", 1, floodModel);
      const alone = run(polite(), true).attainment("B");
      const fair = run([...polite(), ...flood()], true).attainment("B");
      const unfair = run([...polite(), ...flood()], false).attainment("B");
      assert.equal(alone, 1);
      assert.ok(fair >= 0.95, `with fair sharing B attains ${fair}`);
      assert.ok(unfair <= 0.1, `without fair sharing B attains ${unfair}`);
    });
  }

  it("two flooding tenants of weights 2 and 1 share one model about 2:1", () => {
    const both = [...requests(2, 10, "A", 2, "m1"), ...requests(3, 10, "B", 1, "m1")];
    const r = run(both, true);
    const ratio = r.promptTokensServed("A", 60_000) / r.promptTokensServed("B", 60_000);
    assert.ok(ratio > 1.7 && ratio < 2.3, `A:B = ${ratio}`);
  });

  it("without tenants nothing changes: a workload without tenant fields runs as one tenant named nowhere", () => {
    const plain = requests(2, 2, "B", 1, "m1").map(({ tenant: _, ...r }) => r);
    const a = simulate({ costs: analyticCosts(H20, MODELS), slo: () => SLO, devices: 1, policy: "token" }, plain);
    const b = simulate({ costs: analyticCosts(H20, MODELS), slo: () => SLO, devices: 1, policy: "token", scheduler: { fairShare: false } }, plain);
    assert.deepEqual(a.traces, b.traces);
  });

  it("a workload's tenants (one spec, shares of the rate) run through the simulator: the polite one keeps its attainment only with fair sharing", () => {
    const spec = (tenants: { name: string; share: number }[], ratePerSecond: number) =>
      generateWorkload(
        workloadSchema.parse({
          seed: 2,
          durationSeconds: 60,
          ratePerSecond,
          models: ["m1"],
          inputTokens: { mean: 1500, cv: 0.5, max: 4000 },
          outputTokens: { mean: 100, cv: 0.5, max: 300 },
          tenants,
        }),
        ["m1", "m2"],
      );
    const alone = run(spec([{ name: "polite", share: 1 }], 0.5), true).attainment("polite");
    const both = () =>
      spec(
        [
          { name: "polite", share: 1 },
          { name: "flood", share: 30 },
        ],
        15.5,
      );
    const fair = run(both(), true).attainment("polite");
    const unfair = run(both(), false).attainment("polite");
    assert.equal(alone, 1);
    assert.ok(fair >= 0.95, `with fair sharing the polite tenant attains ${fair}`);
    assert.ok(unfair <= 0.1, `without fair sharing it attains ${unfair}`);
  });
});
