import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generateWorkload, popularityWeights, workloadSchema } from "./workload.ts";

const models = ["a", "b", "c", "d"];

describe("workload generator", () => {
  it("is deterministic per seed", () => {
    const spec = workloadSchema.parse({ seed: 3, durationSeconds: 30, ratePerSecond: 5 });
    assert.deepEqual(generateWorkload(spec, models), generateWorkload(spec, models));
    assert.notDeepEqual(generateWorkload(spec, models), generateWorkload({ ...spec, seed: 4 }, models));
  });

  it("hits the requested rate and keeps arrivals inside the duration", () => {
    const reqs = generateWorkload(workloadSchema.parse({ durationSeconds: 200, ratePerSecond: 10 }), models);
    assert.ok(Math.abs(reqs.length / 200 - 10) < 0.6, `rate ${reqs.length / 200}`);
    assert.ok(reqs.every((r, i) => r.arrivalMs < 200_000 && (i === 0 || r.arrivalMs >= reqs[i - 1]!.arrivalMs)));
  });

  it("skews popularity by Zipf rank", () => {
    const w = popularityWeights(4, { kind: "zipf", s: 1 });
    assert.ok(Math.abs(w[0]! / w[1]! - 2) < 1e-9);
    const reqs = generateWorkload(workloadSchema.parse({ durationSeconds: 300, ratePerSecond: 10, popularity: { kind: "zipf", s: 1 } }), models);
    const first = reqs.filter((r) => r.modelId === "a").length / reqs.length;
    assert.ok(Math.abs(first - w[0]!) < 0.03, `share of the top model ${first}`);
  });

  it("makes gamma arrivals burstier than Poisson at the same rate", () => {
    const cv = (xs: number[]) => {
      const gaps = xs.slice(1).map((x, i) => x - xs[i]!);
      const m = gaps.reduce((a, b) => a + b, 0) / gaps.length;
      return Math.sqrt(gaps.reduce((a, b) => a + (b - m) ** 2, 0) / gaps.length) / m;
    };
    const base = { durationSeconds: 600, ratePerSecond: 5 };
    const poisson = generateWorkload(workloadSchema.parse(base), models).map((r) => r.arrivalMs);
    const gamma = generateWorkload(workloadSchema.parse({ ...base, arrivals: { kind: "gamma", cv: 3 } }), models).map((r) => r.arrivalMs);
    assert.ok(Math.abs(cv(poisson) - 1) < 0.15);
    assert.ok(cv(gamma) > 2);
  });

  it("samples lengths in range and rejects unknown models", () => {
    const reqs = generateWorkload(workloadSchema.parse({ inputTokens: { uniform: [10, 20] }, outputTokens: { mean: 100, cv: 1, max: 400 } }), models);
    assert.ok(reqs.every((r) => r.inputTokens >= 10 && r.inputTokens <= 20 && r.outputTokens >= 1 && r.outputTokens <= 400));
    assert.throws(() => generateWorkload(workloadSchema.parse({ models: ["zz"] }), models), /unknown model 'zz'/);
  });

  it("splits the rate between tenants by share; each tenant's requests are the same whoever else sends", () => {
    const base = { seed: 5, durationSeconds: 300, ratePerSecond: 12 };
    const both = generateWorkload(workloadSchema.parse({ ...base, tenants: [{ name: "a" }, { name: "b", share: 2, weight: 3 }] }), models);
    const of = (name: string) => both.filter((r) => r.tenant?.id === name);
    assert.equal(of("a").length + of("b").length, both.length);
    assert.ok(Math.abs(of("a").length / 300 - 4) < 0.5 && Math.abs(of("b").length / 300 - 8) < 0.7, `${of("a").length} / ${of("b").length}`);
    assert.ok(of("b").every((r) => r.tenant!.weight === 3));
    assert.ok(both.every((r, i) => r.index === i && (i === 0 || r.arrivalMs >= both[i - 1]!.arrivalMs)));
    // Tenant a alone at its own rate: the same arrivals, models and lengths.
    const alone = generateWorkload(workloadSchema.parse({ ...base, ratePerSecond: 4, tenants: [{ name: "a" }] }), models);
    const strip = (rs: typeof both) => rs.map(({ modelId, arrivalMs, inputTokens, outputTokens }) => ({ modelId, arrivalMs, inputTokens, outputTokens }));
    assert.deepEqual(strip(of("a")), strip(alone));
    assert.throws(() => workloadSchema.parse({ tenants: [{ name: "a" }, { name: "a" }] }), /tenant names must differ/);
  });
});
