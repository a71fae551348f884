/**
 * The largest N (models, here) a policy sustains: N grows by half from `start` until a run
 * fails, then bisects between the last pass and the first failure. Assumes that a run that
 * fails at N fails at every larger N. A search is a state machine (`next`, `record`) so that
 * a real-server benchmark can step several policies' searches in turn, one run each, and
 * measure them side by side under the same machine load; `largestN` runs one to the end.
 */
export class LargestNSearch {
  /** Largest N that passed (0: none yet). */
  lo = 0;
  /** Smallest N that failed (Infinity: none yet). */
  hi = Number.POSITIVE_INFINITY;
  private pending: number | undefined;

  constructor(
    start: number,
    private readonly max: number,
  ) {
    this.pending = start > max ? undefined : start;
  }

  /** The N to run next, or undefined when the search is done (the answer is `lo`). */
  next(): number | undefined {
    return this.pending;
  }

  record(n: number, passed: boolean): void {
    if (passed) this.lo = Math.max(this.lo, n);
    else this.hi = Math.min(this.hi, n);
    if (this.hi === Number.POSITIVE_INFINITY) {
      const grown = Math.ceil(this.lo * 1.5);
      this.pending = grown > this.max ? undefined : grown;
    } else this.pending = this.hi - this.lo > 1 ? Math.floor((this.lo + this.hi) / 2) : undefined;
  }
}

export function largestN(test: (n: number) => boolean, start = 4, max = 400): number {
  const s = new LargestNSearch(start, max);
  for (let n = s.next(); n !== undefined; n = s.next()) s.record(n, test(n));
  return s.lo;
}
