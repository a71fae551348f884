/**
 * Nearest-rank percentiles without sorting: a report needs two or four ranks of millions of
 * token gaps (an hour of 20 req/s is ~18 million), and sorting them all was the largest
 * single cost after the simulation itself. Selection gives the element a sort would put at
 * each rank, so the figures are the same to the bit.
 */

/** Index of the nearest-rank `p`th percentile among `n` sorted values. */
export function nearestRankIndex(n: number, p: number): number {
  return Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
}

/**
 * The nearest-rank percentiles `ps` of `values` (NaN each when there are none), as a sort
 * ascending would give them. `values` is left as it was (selection runs on a copy).
 */
export function nearestRanks(values: ArrayLike<number>, ps: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) return ps.map(() => Number.NaN);
  const a = Float64Array.from(values);
  // Highest rank first: each selection leaves the lower ranks to the left of it.
  const order = ps.map((p, i) => ({ i, k: nearestRankIndex(n, p) })).sort((x, y) => y.k - x.k);
  const out = new Array<number>(ps.length);
  let hi = n - 1;
  for (const { i, k } of order) {
    select(a, 0, hi, k);
    out[i] = a[k]!;
    hi = k;
  }
  return out;
}

/**
 * Rearrange `a[lo..hi]` so that `a[k]` holds the value a sort would put there, smaller or
 * equal ones before it and larger or equal ones after (Hoare's selection, median of three
 * pivots; ranges it fails to shrink quickly are sorted instead, so it never goes quadratic).
 */
function select(a: Float64Array, lo: number, hi: number, k: number): void {
  let budget = 2 * Math.ceil(Math.log2(hi - lo + 2)) + 8;
  while (hi > lo) {
    if (hi - lo < 16 || budget-- === 0) {
      a.subarray(lo, hi + 1).sort();
      return;
    }
    const mid = lo + ((hi - lo) >> 1);
    // Median of three as pivot, moved to lo.
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    swap(a, lo, mid);
    const pivot = a[lo]!;
    let i = lo;
    let j = hi + 1;
    for (;;) {
      do i++;
      while (i <= hi && a[i]! < pivot);
      do j--;
      while (a[j]! > pivot);
      if (i >= j) break;
      swap(a, i, j);
    }
    swap(a, lo, j);
    // a[lo..j-1] <= pivot = a[j] <= a[j+1..hi]
    if (j === k) return;
    if (k < j) hi = j - 1;
    else lo = j + 1;
  }
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}
