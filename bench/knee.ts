/**
 * The score of a configuration in ../shared/docs/benchmarks.md: the arrival rate at which
 * deadline-SLO attainment crosses 90%, linearly interpolated between the swept rates below and
 * above the crossing ("< r" when even the lowest rate misses, "≥ r" when the highest holds).
 */
export function kneeOf(points: { rate: number; attainment: number }[], threshold = 0.9): string {
  const p = [...points].sort((a, b) => a.rate - b.rate);
  if (p.length === 0) return "n/a";
  const i = p.findIndex((x) => x.attainment < threshold);
  if (i === -1) return `≥ ${p[p.length - 1]!.rate}`;
  if (i === 0) return `< ${p[0]!.rate}`;
  const [a, b] = [p[i - 1]!, p[i]!];
  return (a.rate + ((a.attainment - threshold) / (a.attainment - b.attainment)) * (b.rate - a.rate)).toFixed(2);
}
