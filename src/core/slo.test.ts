import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { meetsDeadlineSlo, percentile, sloReport } from "./slo.ts";

const slo = { ttftMs: 1000, tbtMs: 100 };

describe("deadline SLO", () => {
  it("lets tokens come early and in bursts, as long as each meets its deadline", () => {
    // Token k is due at arrival + 1000 + 100k: a burst of 3 at t=1150 misses only if late for token 0.
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [900, 1100, 1150], ok: true }, slo), true);
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [1001], ok: true }, slo), false);
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [500, 1201], ok: true }, slo), false);
  });

  it("counts failed, rejected and short requests as misses", () => {
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [10], ok: false }, slo), false);
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [], ok: true }, slo), false);
    assert.equal(meetsDeadlineSlo({ modelId: "m", arrivalMs: 0, tokenTimesMs: [10], expectedTokens: 2, ok: true }, slo), false);
  });

  it("reports attainment over all requests, goodput per second and gap burstiness", () => {
    const r = sloReport(
      [
        { modelId: "m", arrivalMs: 0, tokenTimesMs: [100, 150, 400], ok: true },
        { modelId: "m", arrivalMs: 0, tokenTimesMs: [], ok: false },
      ],
      () => slo,
      2000,
    );
    assert.equal(r.attainment, 0.5);
    assert.equal(r.goodput, 0.5);
    assert.equal(r.gapsOverTbt, 0.5);
    assert.equal(r.ttftP50Ms, 100);
  });

  it("takes nearest-rank percentiles", () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([1, 2, 3, 4, 100], 99), 100);
  });
});
