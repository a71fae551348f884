/**
 * Least squares with non-negative coefficients for the small linear cost models a machine
 * profile fits (a handful of terms): ordinary least squares, and any term whose
 * coefficient comes out negative is dropped (set to 0) and the rest refitted.
 */
import { median } from "../core/slo.ts";

/** Solve A x = b (square, small) by Gaussian elimination with partial pivoting; null if singular. */
function solve(a: number[][], b: number[]): number[] | null {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    if (Math.abs(m[p]![c]!) < 1e-12) return null;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

/** Coefficients x >= 0 minimising |X x - y|², X: one row of features per sample. */
export function fitNonNegative(x: number[][], y: number[]): number[] {
  const terms = x[0]?.length ?? 0;
  const active = new Set(Array.from({ length: terms }, (_, i) => i));
  for (;;) {
    const cols = [...active];
    const out = new Array<number>(terms).fill(0);
    if (cols.length === 0) return out;
    // Normal equations over the active terms, scaled per column for conditioning.
    const scale = cols.map((c) => Math.sqrt(x.reduce((s, row) => s + row[c]! * row[c]!, 0)) || 1);
    const ata = cols.map((ci, i) => cols.map((cj, j) => x.reduce((s, row) => s + (row[ci]! / scale[i]!) * (row[cj]! / scale[j]!), 0)));
    const atb = cols.map((ci, i) => x.reduce((s, row, k) => s + (row[ci]! / scale[i]!) * y[k]!, 0));
    const sol = solve(ata, atb);
    if (!sol) {
      active.delete(cols[cols.length - 1]!);
      continue;
    }
    const coef = sol.map((v, i) => v / scale[i]!);
    const worst = coef.reduce((w, v, i) => (v < coef[w]! ? i : w), 0);
    if (coef[worst]! < 0) {
      active.delete(cols[worst]!);
      continue;
    }
    cols.forEach((c, i) => {
      out[c] = coef[i]!;
    });
    return out;
  }
}

/** Median of |predicted − measured| / measured. */
export function medianRelativeError(predicted: number[], measured: number[]): number {
  return median(measured.map((m, i) => Math.abs(predicted[i]! - m) / m));
}
