/**
 * "How many accelerators does this workload need?" For each policy, the smallest fleet whose
 * simulated deadline-SLO attainment reaches the target, found by exponential then binary
 * search over fleet sizes (attainment grows with devices; a test checks it on seeded runs).
 * `dedicated` sizes every model on its own devices (at least one each, as a per-model
 * deployment does) and adds them up.
 *
 * Beside attainment, each policy is also sized by the reference system's own score (the
 * mean share of tokens on schedule, met at ≥ 0.9: core/slo.ts), so the figures published
 * against that score can be compared.
 */
import type { SloTargets } from "../core/types.ts";
import type { WorkloadRequest } from "../workload/workload.ts";
import type { SimCosts } from "./SimCosts.ts";
import { simulate, type SimConfig, type SimPolicy, type SimResult } from "./Simulation.ts";
import { ON_SCHEDULE_TARGET } from "../core/slo.ts";
import { mergeSummaries, summaryReport } from "./traceStats.ts";

export interface PlanInput {
  costs: SimCosts;
  slo: (modelId: string) => SloTargets;
  requests: WorkloadRequest[];
  /** Attainment to reach (default 0.99). */
  target: number;
  /** Give up above this many devices. */
  maxDevices: number;
  simulation?: Partial<SimConfig>;
  /** Told which fleet size is being simulated and how far it has got (for a progress bar). */
  onProgress?: (p: PlanProgress) => void;
}

export interface PlanProgress {
  policy: SimPolicy;
  /** Policies already sized. */
  policiesDone: number;
  devices: number;
  arrivedRequests: number;
  requests: number;
}

export interface PolicyPlan {
  policy: SimPolicy;
  /** null when even maxDevices does not reach the target. */
  minDevices: number | null;
  attainment: number;
  /** The on-schedule score at `minDevices` (or at maxDevices when null). */
  onScheduleScore: number;
  /** Smallest fleet whose on-schedule score reaches ON_SCHEDULE_TARGET; null past maxDevices. */
  minDevicesOnSchedule: number | null;
  goodput: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  tbtP99Ms: number;
  gapsOverTbt: number;
  utilization: number;
  switches: number;
  /** dedicated: devices per model. */
  perModel?: Record<string, number>;
  simulations: number;
}

/**
 * One fleet size. `early`: stop as soon as neither target can be reached any more (such a size
 * fails both searches whatever happens next; its figures are then partial and never shown).
 */
function run(
  input: PlanInput,
  policy: SimPolicy,
  devices: number,
  early: boolean,
  modelIds = input.costs.modelIds,
  requests = input.requests,
  dedicated?: Record<string, number>,
): SimResult {
  const stopBelow = early ? { stopBelow: { attainment: input.target, onScheduleScore: ON_SCHEDULE_TARGET } } : {};
  const report = input.onProgress;
  const onProgress = report
    ? { onProgress: (arrivedRequests: number) => report({ policy, policiesDone: finished.get(input) ?? 0, devices, arrivedRequests, requests: requests.length }) }
    : {};
  return simulate(
    { costs: input.costs, modelIds, slo: input.slo, devices, policy, ...(dedicated ? { dedicated } : {}), recordTraces: false, ...stopBelow, ...onProgress, ...input.simulation },
    requests,
  );
}

/** Policies planFleet has finished, for progress reports. */
const finished = new WeakMap<PlanInput, number>();

/**
 * Fleet sizes simulated once each: searches share them, stopped early where both targets
 * are out of reach; `full` reruns a stopped size to the end for the row that reports it.
 */
function sizes(simulateSize: (n: number, early: boolean) => SimResult, count: () => void) {
  const cache = new Map<number, SimResult>();
  const at = (n: number): SimResult => {
    let r = cache.get(n);
    if (!r) {
      count();
      r = simulateSize(n, true);
      cache.set(n, r);
    }
    return r;
  };
  const full = (n: number): SimResult => {
    const r = at(n);
    if (!r.stopped) return r;
    const whole = simulateSize(n, false);
    cache.set(n, whole);
    return whole;
  };
  return { at, full };
}

/** Smallest n in [1, max] with ok(n), assuming ok is monotone; null if none. */
function searchMin(max: number, ok: (n: number) => boolean): number | null {
  let hi = 1;
  while (hi <= max && !ok(hi)) hi *= 2;
  if (hi > max) {
    if (!ok(max)) return null;
    hi = max;
  }
  let lo = Math.floor(hi / 2) + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) hi = mid;
    else lo = mid + 1;
  }
  return hi;
}

function summarize(
  policy: SimPolicy,
  minDevices: number | null,
  minDevicesOnSchedule: number | null,
  r: SimResult,
  simulations: number,
  perModel?: Record<string, number>,
): PolicyPlan {
  return {
    policy,
    minDevices,
    attainment: r.report.attainment,
    onScheduleScore: r.report.onScheduleScore,
    minDevicesOnSchedule,
    goodput: r.report.goodput,
    ttftP50Ms: r.report.ttftP50Ms,
    ttftP99Ms: r.report.ttftP99Ms,
    tbtP99Ms: r.report.tbtP99Ms,
    gapsOverTbt: r.report.gapsOverTbt,
    utilization: r.utilization,
    switches: r.switches,
    ...(perModel ? { perModel } : {}),
    simulations,
  };
}

const meetsScore = (r: SimResult) => !r.stopped && r.report.onScheduleScore >= ON_SCHEDULE_TARGET;
const meetsTarget = (r: SimResult, target: number) => !r.stopped && r.report.attainment >= target;

export function planPolicy(input: PlanInput, policy: SimPolicy): PolicyPlan {
  let sims = 0;
  if (policy === "dedicated") {
    const perModel: Record<string, number> = {};
    const results: SimResult[] = [];
    // Per model, the score's fleet is summed the same way (every model's mean ≥ 0.9 gives a
    // fleet mean ≥ 0.9); null once any model needs more than maxDevices.
    let onScheduleTotal: number | null = 0;
    let unreachable: SimResult | undefined;
    for (const m of input.costs.modelIds) {
      const mine = input.requests.filter((r) => r.modelId === m);
      const { at, full } = sizes(
        (n, early) => run(input, "dedicated", n, early, [m], mine, { [m]: n }),
        () => sims++,
      );
      const n = mine.length === 0 ? 1 : searchMin(input.maxDevices, (k) => meetsTarget(at(k), input.target));
      const nScore = mine.length === 0 ? 1 : searchMin(input.maxDevices, (k) => meetsScore(at(k)));
      onScheduleTotal = onScheduleTotal === null || nScore === null ? null : onScheduleTotal + nScore;
      if (n === null) {
        unreachable ??= full(input.maxDevices);
        continue;
      }
      perModel[m] = n;
      results.push(full(n));
    }
    if (unreachable) return summarize(policy, null, onScheduleTotal, unreachable, sims);
    const total = Object.values(perModel).reduce((a, b) => a + b, 0);
    // Per-model runs are independent: the fleet's figures are their union.
    const summary = mergeSummaries(results.map((r) => r.summary));
    const horizon = input.requests.length ? input.requests[input.requests.length - 1]!.arrivalMs : 0;
    const busy = results.reduce((s, r, i) => s + r.utilization * (perModel[input.costs.modelIds[i]!] ?? 0), 0);
    const merged: SimResult = {
      traces: [],
      summary,
      stopped: false,
      report: summaryReport(summary, horizon),
      utilization: total ? busy / total : 0,
      switches: results.reduce((s, r) => s + r.switches, 0),
      timeline: [],
      simulatedMs: Math.max(...results.map((r) => r.simulatedMs)),
    };
    return summarize(policy, total, onScheduleTotal, merged, sims, perModel);
  }
  const { at, full } = sizes(
    (n, early) => run(input, policy, n, early),
    () => sims++,
  );
  const n = searchMin(input.maxDevices, (k) => meetsTarget(at(k), input.target));
  const nScore = searchMin(input.maxDevices, (k) => meetsScore(at(k)));
  return summarize(policy, n, nScore, full(n ?? input.maxDevices), sims);
}

export function planFleet(input: PlanInput, policies: SimPolicy[]): PolicyPlan[] {
  return policies.map((p, i) => {
    finished.set(input, i);
    return planPolicy(input, p);
  });
}
