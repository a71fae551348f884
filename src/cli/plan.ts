/**
 * Composition roots of `pitcher plan` and `pitcher simulate`.
 */
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_SLO } from "../core/types.ts";
import type { AcceleratorSpec } from "../sim/accelerators.ts";
import { loadMarket, loadWorkload, resolveAccelerator, type Market } from "../sim/planInputs.ts";
import { planFleet, type PolicyPlan } from "../sim/planner.ts";
import { buildReport, reportHtml } from "../sim/report.ts";
import { simulate, type SimPolicy } from "../sim/Simulation.ts";
import type { WorkloadRequest } from "../workload/workload.ts";

export interface PlanArgs {
  models?: string;
  accelerator: string;
  workload?: string;
  target: number;
  policies: SimPolicy[];
  maxDevices: number;
  seed?: number;
  duration?: number;
  rate?: number;
}

export function prepare(a: Omit<PlanArgs, "target" | "policies" | "maxDevices">): { market: Market; acc: AcceleratorSpec; requests: WorkloadRequest[] } {
  const market = loadMarket(a.models);
  const acc = resolveAccelerator(a.accelerator, market);
  const requests = loadWorkload(a.workload, market, { seed: a.seed, durationSeconds: a.duration, ratePerSecond: a.rate });
  return { market, acc, requests };
}

export function runPlan(a: PlanArgs): { accelerator: string; target: number; requests: number; models: number; policies: PolicyPlan[] } {
  const { market, acc, requests } = prepare(a);
  const policies = planFleet(
    { accelerator: acc, models: market.models, slo: (m) => market.slo.get(m) ?? DEFAULT_SLO, requests, target: a.target, maxDevices: a.maxDevices },
    a.policies,
  );
  return { accelerator: acc.id, target: a.target, requests: requests.length, models: market.models.length, policies };
}

export function formatPlanTable(p: ReturnType<typeof runPlan>): string {
  const head = ["policy", "min devices", "attainment", "goodput/s", "TTFT p50 ms", "TTFT p99 ms", "TBT p99 ms", "utilisation", "switches"];
  const rows = p.policies.map((x) => [
    x.policy,
    x.minDevices === null ? `> max` : String(x.minDevices),
    x.attainment.toFixed(3),
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
    `${p.models} models, ${p.requests} requests, ${p.accelerator}, target attainment ${p.target}`,
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
  const { market, acc, requests } = prepare(a);
  const slo = (m: string) => market.slo.get(m) ?? DEFAULT_SLO;
  const base = { accelerator: acc, models: market.models, slo, policy: a.policy } as const;
  // dedicated: spread the devices over the models by request share (at least one each).
  const dedicated = (n: number): Record<string, number> | undefined => {
    if (a.policy !== "dedicated") return undefined;
    const counts = new Map(market.models.map((m) => [m.id, 0]));
    for (const r of requests) counts.set(r.modelId, (counts.get(r.modelId) ?? 0) + 1);
    const out: Record<string, number> = {};
    const spare = Math.max(0, n - market.models.length);
    for (const m of market.models) out[m.id] = 1 + Math.floor((spare * (counts.get(m.id) ?? 0)) / Math.max(1, requests.length));
    return out;
  };
  const main = simulate({ ...base, devices: a.devices, recordTimeline: true, ...(dedicated(a.devices) ? { dedicated: dedicated(a.devices)! } : {}) }, requests);
  const sizes = [...new Set([0.5, 0.75, 1, 1.25, 1.5, 2].map((f) => Math.max(1, Math.round(a.devices * f))))].sort((x, y) => x - y);
  const sweep = sizes.map((n) => {
    const r = n === a.devices ? main : simulate({ ...base, devices: n, ...(dedicated(n) ? { dedicated: dedicated(n)! } : {}) }, requests);
    return { devices: n, attainment: r.report.attainment, goodput: r.report.goodput };
  });
  const report = buildReport({ accelerator: acc.id, policy: a.policy, devices: a.devices }, main, sweep, a.timelineSeconds * 1000);
  const json = JSON.stringify(report, null, 1);
  const html = reportHtml(report);
  fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
  const files = [`${a.out}.json`, `${a.out}.html`];
  fs.writeFileSync(files[0]!, json);
  fs.writeFileSync(files[1]!, html);
  return { json, html, files };
}
