import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { meetsDeadlineSlo, onScheduleFraction, percentile, sloReport } from "./slo.ts";

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

  it("scores each request by its share of tokens on schedule, the mean over requests (the reference system's score)", () => {
    // Deadlines: token 0 by 1000, token k by 1000 + 100k.
    const late = { modelId: "m", arrivalMs: 0, tokenTimesMs: [900, 1100, 1150, 1301], ok: true }; // token 3 due 1300: late
    const slowStart = { modelId: "m", arrivalMs: 0, tokenTimesMs: [1150, 1160, 1200, 1300], ok: true }; // due 1000, 1100, 1200, 1300: tokens 0 and 1 late
    const short = { modelId: "m", arrivalMs: 0, tokenTimesMs: [10], expectedTokens: 4, ok: true }; // 3 tokens never came
    const rejected = { modelId: "m", arrivalMs: 0, tokenTimesMs: [], expectedTokens: 4, ok: false };
    assert.equal(onScheduleFraction(late, slo), 0.75);
    assert.equal(onScheduleFraction(slowStart, slo), 0.5);
    assert.equal(onScheduleFraction(short, slo), 0.25);
    assert.equal(onScheduleFraction(rejected, slo), 0);
    const r = sloReport([late, slowStart, short, rejected], () => slo, 2000);
    // Not one of them meets the deadline SLO, yet the score forgives late tokens.
    assert.equal(r.attainment, 0);
    assert.equal(r.onScheduleScore, (0.75 + 0.5 + 0.25 + 0) / 4);
  });
});
