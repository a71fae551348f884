import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fitNonNegative, medianRelativeError } from "./fit.ts";

describe("fitNonNegative", () => {
  it("recovers the coefficients of an exact linear model", () => {
    const x: number[][] = [];
    const y: number[] = [];
    for (const b of [1, 2, 4])
      for (const c of [16, 256, 768]) {
        x.push([1, b, b * c]);
        y.push(2 + 0.5 * b + 0.001 * b * c);
      }
    const [f, per, ctx] = fitNonNegative(x, y);
    assert.ok(Math.abs(f! - 2) < 1e-9 && Math.abs(per! - 0.5) < 1e-9 && Math.abs(ctx! - 0.001) < 1e-12);
  });

  it("drops a term that would come out negative and refits the others", () => {
    // y falls slightly with the second feature: least squares would make it negative.
    const x = [
      [1, 1],
      [1, 2],
      [1, 3],
      [1, 4],
    ];
    const y = [10, 9.9, 9.8, 9.7];
    const [a, b] = fitNonNegative(x, y);
    assert.equal(b, 0);
    assert.ok(Math.abs(a! - 9.85) < 1e-9, "the intercept is the mean once the slope is dropped");
  });

  it("reports the median relative error", () => {
    assert.equal(medianRelativeError([11, 9, 10], [10, 10, 10]), 0.1);
  });
});
