/**
 * Composition roots of `pitcher plan` and `pitcher simulate`.
 */
import fs from "node:fs";
import cliProgress from "cli-progress";
import path from "node:path";
import { ConfigError } from "../core/errors.ts";
import { ON_SCHEDULE_TARGET } from "../core/slo.ts";
import { DEFAULT_SLO, type SloTargets } from "../core/types.ts";
import { measuredCosts } from "../sim/machineProfile.ts";
import { loadMachineProfile, loadMarket, loadWorkload, loadWorkloadSpec, resolveAccelerator } from "../sim/planInputs.ts";
import { planFleet, type PlanProgress, type PolicyPlan } from "../sim/planner.ts";
import { buildReport, type SimulationReport } from "../sim/report.ts";
import { simulate, type SimPolicy } from "../sim/Simulation.ts";
import { analyticCosts, type SimCosts } from "../sim/SimCosts.ts";
import { simulationReportHtml } from "../views/simulationReportHtml.ts";
import type { ReportSetup } from "../views/reportHeader.ts";
import type { WorkloadRequest } from "../workload/workload.ts";
import { describeSlo, describeWorkload } from "./reportSetup.ts";

export interface PlanArgs {
  models?: string;
  accelerator: string;
  /** A machine profile (`pitcher profile`): plan this machine's devices and models instead. */
  profile?: string;
  workload?: string;
  target: number;
  policies: SimPolicy[];
  maxDevices: number;
  seed?: number;
  duration?: number;
  rate?: number;
  /** Price model loads at this host-link bandwidth (GB/s) where the cost model is faster. */
  loadGbps?: number;
}

export interface Prepared {
  costs: SimCosts;
  slo: (modelId: string) => SloTargets;
  requests: WorkloadRequest[];
  /** Header lines for the reports: accelerator or machine profile, workload, SLOs, seed. */
  setup: ReportSetup;
}

export function prepare(a: Omit<PlanArgs, "target" | "policies" | "maxDevices">): Prepared {
  const overrides = { seed: a.seed, durationSeconds: a.duration, ratePerSecond: a.rate };
  if (a.profile) {
    if (a.models) throw new ConfigError("--profile brings its own models; leave out --models");
    const p = loadMachineProfile(a.profile);
    const costs = measuredCosts(p);
    const slo = new Map(p.models.map((m) => [m.id, m.slo]));
    // Default workload: the one `pitcher bench` sends by default, so the two compare.
    const requests = loadWorkload(a.workload, costs.modelIds, overrides, {});
    const sloOf = (m: string) => slo.get(m) ?? DEFAULT_SLO;
    const setup = describeSetup(`machine profile ${a.profile} (${costs.id})`, loadWorkloadSpec(a.workload, overrides, {}), costs.modelIds, sloOf);
    return { costs, slo: sloOf, requests, setup };
  }
  const market = loadMarket(a.models);
  const acc = resolveAccelerator(a.accelerator, market);
  const requests = loadWorkload(
    a.workload,
    market.models.map((m) => m.id),
    overrides,
  );
  const costs = analyticCosts(acc, market.models);
  const sloOf = (m: string) => market.slo.get(m) ?? DEFAULT_SLO;
  return { costs, slo: sloOf, requests, setup: describeSetup(costs.id, loadWorkloadSpec(a.workload, overrides), costs.modelIds, sloOf) };
}

/** A bar on stderr (when it is a terminal), shown once the work has run a few seconds. */
function delayedBar(format: string, total: number): { update: (value: number, payload: object) => void; stop: () => void } | undefined {
  if (!process.stderr.isTTY) return undefined;
  const startedMs = Date.now();
  let bar: cliProgress.SingleBar | undefined;
  return {
    update: (value, payload) => {
      if (!bar) {
        if (Date.now() - startedMs < 3000) return;
        bar = new cliProgress.SingleBar({ format, stream: process.stderr }, cliProgress.Presets.shades_classic);
        bar.start(total, value, payload);
      } else bar.update(value, payload);
    },
    stop: () => bar?.stop(),
  };
}

/** Plans that run longer than a few seconds show which policy and fleet size they are at. */
function planProgressBar(policies: number): { onProgress: (p: PlanProgress) => void; stop: () => void } | undefined {
  const bar = delayedBar("planning [{bar}] {value}/{total} policies · {policy} on {devices} devices: {arrived}/{requests} requests", policies);
  return bar && { onProgress: (p) => bar.update(p.policiesDone, { policy: p.policy, devices: p.devices, arrived: p.arrivedRequests, requests: p.requests }), stop: bar.stop };
}

function describeSetup(accelerator: string, w: ReturnType<typeof loadWorkloadSpec>, models: string[], slo: (m: string) => SloTargets): ReportSetup {
  return [
    ["accelerator", accelerator],
    ["workload", describeWorkload(w, models.length)],
    ["SLO targets", describeSlo(models, slo)],
    ["seed", String(w.seed)],
  ];
}

export function runPlan(a: PlanArgs): {
  accelerator: string;
  target: number;
  requests: number;
  models: number;
  policies: PolicyPlan[];
  /** What was planned for: accelerator, workload, SLO targets, seed (the table prints it first). */
  setup: ReportSetup;
} {
  const { costs, slo, requests, setup } = prepare(a);
  const simulation = a.loadGbps ? { simulation: { loadGBps: a.loadGbps } } : {};
  const progress = planProgressBar(a.policies.length);
  const onProgress = progress ? { onProgress: progress.onProgress } : {};
  let policies: PolicyPlan[];
  try {
    policies = planFleet({ costs, slo, requests, target: a.target, maxDevices: a.maxDevices, ...simulation, ...onProgress }, a.policies);
  } finally {
    progress?.stop();
  }
  return { accelerator: costs.id, target: a.target, requests: requests.length, models: costs.modelIds.length, policies, setup };
}

export function formatPlanTable(p: ReturnType<typeof runPlan>): string {
  const head = [
    "policy",
    "min devices",
    "attainment",
    "on-schedule",
    `devices @ ${ON_SCHEDULE_TARGET}`,
    "goodput/s",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "TBT p99 ms",
    "utilisation",
    "switches",
  ];
  const rows = p.policies.map((x) => [
    x.policy,
    x.minDevices === null ? `> max` : String(x.minDevices),
    x.attainment.toFixed(3),
    x.onScheduleScore.toFixed(3),
    x.minDevicesOnSchedule === null ? `> max` : String(x.minDevicesOnSchedule),
    x.goodput.toFixed(2),
    x.ttftP50Ms.toFixed(0),
    x.ttftP99Ms.toFixed(0),
    x.tbtP99Ms.toFixed(0),
    x.utilization.toFixed(2),
    String(x.switches),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
  return [
    ...p.setup.map(([k, v]) => `${k}: ${v}`),
    `${p.models} models, ${p.requests} requests, ${p.accelerator}, target attainment ${p.target}`,
    `(on-schedule: the reference system's score, mean share of tokens on time, at the attainment fleet; devices @ ${ON_SCHEDULE_TARGET}: the fleet that score needs)`,
    line(head),
    ...rows.map(line),
  ].join("\n");
}

export interface SimulateArgs extends Omit<PlanArgs, "target" | "policies" | "maxDevices"> {
  policy: SimPolicy;
  devices: number;
  out: string;
  timelineSeconds: number;
}

export function runSimulate(a: SimulateArgs): { json: string; html: string; files: string[] } {
  const { costs, slo, requests, setup } = prepare(a);
  const base = { costs, slo, policy: a.policy, recordTraces: false, ...(a.loadGbps ? { loadGBps: a.loadGbps } : {}) } as const;
  // dedicated: spread the devices over the models by request share (at least one each).
  const dedicated = (n: number): Record<string, number> | undefined => {
    if (a.policy !== "dedicated") return undefined;
    const counts = new Map(costs.modelIds.map((m) => [m, 0]));
    for (const r of requests) counts.set(r.modelId, (counts.get(r.modelId) ?? 0) + 1);
    const out: Record<string, number> = {};
    const spare = Math.max(0, n - costs.modelIds.length);
    for (const m of costs.modelIds) out[m] = 1 + Math.floor((spare * (counts.get(m) ?? 0)) / Math.max(1, requests.length));
    return out;
  };
  const sizes = [...new Set([0.5, 0.75, 1, 1.25, 1.5, 2].map((f) => Math.max(1, Math.round(a.devices * f))))].sort((x, y) => x - y);
  // The asked size, then the sweep around it: a bar once it runs longer than a few seconds.
  const bar = delayedBar("simulating [{bar}] {value}/{total} fleet sizes · {devices} devices: {arrived}/{requests} requests", sizes.length);
  const progress = (done: number, n: number) => (bar ? { onProgress: (arrived: number) => bar.update(done, { devices: n, arrived, requests: requests.length }) } : {});
  let main: ReturnType<typeof simulate>;
  let sweep: SimulationReport["sweep"];
  try {
    main = simulate(
      { ...base, devices: a.devices, recordTimeline: true, ...(dedicated(a.devices) ? { dedicated: dedicated(a.devices)! } : {}), ...progress(0, a.devices) },
      requests,
    );
    let done = 1;
    sweep = sizes.map((n) => {
      const r = n === a.devices ? main : simulate({ ...base, devices: n, ...(dedicated(n) ? { dedicated: dedicated(n)! } : {}), ...progress(done++, n) }, requests);
      return { devices: n, attainment: r.report.attainment, goodput: r.report.goodput };
    });
  } finally {
    bar?.stop();
  }
  const report = buildReport({ accelerator: costs.id, policy: a.policy, devices: a.devices }, main, sweep, a.timelineSeconds * 1000);
  const page = { ...report, setup: [["policy", a.policy], ["devices", String(a.devices)], ...setup] satisfies ReportSetup };
  const json = JSON.stringify(page, null, 1);
  const html = simulationReportHtml(page);
  fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
  const files = [`${a.out}.json`, `${a.out}.html`];
  fs.writeFileSync(files[0]!, json);
  fs.writeFileSync(files[1]!, html);
  return { json, html, files };
}

/** The one line `pitcher simulate` prints: the policy and fleet, then the headline numbers. */
export function formatSimulateLine(r: {
  policy: string;
  devices: number;
  accelerator: string;
  report: { attainment: number; onScheduleScore: number; goodput: number };
  utilization: number;
  switches: number;
}): string {
  return `${r.policy} on ${r.devices} × ${r.accelerator}: attainment ${r.report.attainment.toFixed(3)}, on-schedule score ${r.report.onScheduleScore.toFixed(3)}, goodput ${r.report.goodput.toFixed(2)}/s, utilisation ${(100 * r.utilization).toFixed(1)}%, switches ${r.switches}`;
}
