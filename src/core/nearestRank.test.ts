import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { nearestRankIndex, nearestRanks } from "./nearestRank.ts";

const bySort = (values: number[], ps: number[]): number[] => {
  const s = Float64Array.from(values).sort();
  return ps.map((p) => (s.length === 0 ? Number.NaN : s[nearestRankIndex(s.length, p)]!));
};

describe("nearestRanks", () => {
  it("gives what sorting gives, for any values and ranks (ties, runs, sorted and reversed input)", () => {
    // -0 and 0 compare equal, so selection may return either where a sort puts -0 first;
    // token gaps and latencies are never -0 (x - y is +0 when they are equal).
    const value = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).filter((x) => !Object.is(x, -0)),
      fc.integer({ min: 0, max: 3 }),
    );
    fc.assert(
      fc.property(
        fc.array(value, { maxLength: 400 }),
        fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom("as is", "sorted", "reversed"),
        (xs, ps, shape) => {
          const values = shape === "as is" ? xs : [...xs].sort((a, b) => (shape === "sorted" ? a - b : b - a));
          const copy = [...values];
          assert.deepEqual(nearestRanks(values, ps), bySort(values, ps));
          assert.deepEqual(values, copy);
        },
      ),
      { numRuns: 2000, seed: 15 },
    );
  });

  it("handles a large array with few distinct values (the simulator's token gaps)", () => {
    const values = new Float64Array(200_000);
    for (let i = 0; i < values.length; i++) values[i] = [12.5, 12.5, 40, 3][i % 4]! + (i % 1000 === 0 ? i : 0);
    assert.deepEqual(nearestRanks(values, [50, 99, 1, 100]), bySort(Array.from(values), [50, 99, 1, 100]));
  });
});
