/**
 * `pitcher simulate --nodes N` and `pitcher plan --nodes N`: N nodes of D devices each, routed
 * by the router's own routing function (sim/fleetSimulation.ts), beside one pool of N·D devices
 * (the cost of splitting it) and the same nodes with one down (its share routed to the others).
 */
import fs from "node:fs";
import path from "node:path";
import { ConfigError } from "../core/errors.ts";
import { type FleetSimConfig, type FleetSimResult, simulateFleet } from "../sim/fleetSimulation.ts";
import { buildReport } from "../sim/report.ts";
import { type SimResult, simulate } from "../sim/Simulation.ts";
import { simulationReportHtml } from "../views/simulationReportHtml.ts";
import type { ReportSetup } from "../views/reportHeader.ts";
import { type PlanArgs, type Prepared, prepare, type SimulateArgs } from "./plan.ts";

interface Figures {
  attainment: number;
  goodput: number;
}

export interface NodesComparison {
  nodes: number;
  devicesPerNode: number;
  fleet: Figures & { routed: number[]; unrouted: number };
  /** One pool of nodes × devicesPerNode devices under one scheduler. */
  onePool: Figures;
  /** Node 0 down for the whole run (absent with one node). */
  oneNodeDown: (Figures & { routed: number[]; unrouted: number }) | null;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const figures = (r: SimResult): Figures => ({ attainment: round(r.report.attainment), goodput: round(r.report.goodput) });

function runNodes(p: Prepared, a: Pick<SimulateArgs, "policy" | "loadGbps">, nodes: number, devicesPerNode: number, recordTimeline = false) {
  if (a.policy === "dedicated") throw new ConfigError("--nodes: the dedicated policy is not simulated per node (choose token, request or serverless)");
  const base: FleetSimConfig = { costs: p.costs, slo: p.slo, policy: a.policy, nodes, devicesPerNode, recordTimeline, ...(a.loadGbps ? { loadGBps: a.loadGbps } : {}) };
  const fleet = simulateFleet(base, p.requests);
  const pool = simulate(
    { costs: p.costs, slo: p.slo, policy: a.policy, devices: nodes * devicesPerNode, recordTraces: false, ...(a.loadGbps ? { loadGBps: a.loadGbps } : {}) },
    p.requests,
  );
  const down: FleetSimResult | null = nodes > 1 ? simulateFleet({ ...base, recordTimeline: false, downNodes: [0] }, p.requests) : null;
  const comparison: NodesComparison = {
    nodes,
    devicesPerNode,
    fleet: { ...figures(fleet), routed: fleet.routed, unrouted: fleet.unrouted },
    onePool: figures(pool),
    oneNodeDown: down && { ...figures(down), routed: down.routed, unrouted: down.unrouted },
  };
  return { fleet, comparison };
}

export function runSimulateNodes(a: SimulateArgs & { nodes: number }): { json: string; html: string; files: string[]; line: string } {
  const p = prepare(a);
  const { fleet, comparison } = runNodes(p, a, a.nodes, a.devices, true);
  // The sweep: one node fewer and one more, each routed as this one.
  const sweep = [a.nodes - 1, a.nodes, a.nodes + 1]
    .filter((n) => n >= 1)
    .map((n) => {
      const r =
        n === a.nodes
          ? fleet
          : simulateFleet({ costs: p.costs, slo: p.slo, policy: a.policy, nodes: n, devicesPerNode: a.devices, ...(a.loadGbps ? { loadGBps: a.loadGbps } : {}) }, p.requests);
      return { devices: n * a.devices, attainment: r.report.attainment, goodput: r.report.goodput };
    });
  const report = buildReport({ accelerator: p.costs.id, policy: a.policy, devices: a.nodes * a.devices }, fleet, sweep, a.timelineSeconds * 1000);
  const setup: ReportSetup = [["policy", a.policy], ["nodes", `${a.nodes} × ${a.devices} devices`], ...p.setup];
  const page = { ...report, nodes: comparison, setup };
  const json = JSON.stringify(page, null, 1);
  const html = simulationReportHtml(page);
  fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
  const files = [`${a.out}.json`, `${a.out}.html`];
  fs.writeFileSync(files[0]!, json);
  fs.writeFileSync(files[1]!, html);
  return { json, html, files, line: formatNodesLine(a.policy, p.costs.id, comparison) };
}

/** What `simulate --nodes` prints: the nodes, one pool of as many devices, and one node down. */
export function formatNodesLine(policy: string, accelerator: string, c: NodesComparison): string {
  const f = (x: Figures) => `attainment ${x.attainment.toFixed(3)}, goodput ${x.goodput.toFixed(2)}/s`;
  return [
    `${policy} on ${c.nodes} nodes × ${c.devicesPerNode} × ${accelerator}: ${f(c.fleet)} (routed ${c.fleet.routed.join("/")}, unrouted ${c.fleet.unrouted})`,
    `  one pool of ${c.nodes * c.devicesPerNode} devices: ${f(c.onePool)}`,
    c.oneNodeDown
      ? `  one node down: ${f(c.oneNodeDown)} (routed ${c.oneNodeDown.routed.join("/")}, unrouted ${c.oneNodeDown.unrouted})`
      : `  one node down: (one node: nothing left)`,
  ].join("\n");
}

export interface PlanNodesArgs extends Omit<PlanArgs, "policies" | "maxDevices"> {
  policy: SimulateArgs["policy"];
  /** Devices per node. */
  devices: number;
  maxNodes: number;
}

/**
 * `plan --nodes`: the smallest number of nodes of D devices whose routed attainment reaches
 * the target (nodes tried one by one: a node is a big step, and fleets are small), with one
 * pool of as many devices and one node down at that size.
 */
export function runPlanNodes(a: PlanNodesArgs): { policy: string; accelerator: string; minNodes: number | null; at: NodesComparison; target: number; setup: ReportSetup } {
  const p = prepare(a);
  let at: NodesComparison | undefined;
  for (let n = 1; n <= a.maxNodes; n++) {
    at = runNodes(p, a, n, a.devices).comparison;
    if (at.fleet.attainment >= a.target) return { policy: a.policy, accelerator: p.costs.id, minNodes: n, at, target: a.target, setup: p.setup };
  }
  return { policy: a.policy, accelerator: p.costs.id, minNodes: null, at: at!, target: a.target, setup: p.setup };
}

export function formatPlanNodes(r: ReturnType<typeof runPlanNodes>): string {
  const head =
    r.minNodes === null
      ? `no fleet of up to ${r.at.nodes} nodes reaches attainment ${r.target}; at ${r.at.nodes}:`
      : `smallest fleet reaching attainment ${r.target}: ${r.minNodes} nodes × ${r.at.devicesPerNode} devices`;
  return [...r.setup.map(([k, v]) => `${k}: ${v}`), head, formatNodesLine(r.policy, r.accelerator, r.at)].join("\n");
}
