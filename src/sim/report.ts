/**
 * The simulation report: a JSON document (deterministic: the same seed gives the same bytes).
 * Its page with charts is drawn by views/simulationReportHtml.ts.
 */
import { cdfPoints as cdf, type SloReport } from "../core/slo.ts";
import type { SimResult, TimelineEntry } from "./Simulation.ts";

export interface SimulationReport {
  accelerator: string;
  policy: string;
  devices: number;
  requests: number;
  report: SloReport;
  utilization: number;
  switches: number;
  sweep: { devices: number; attainment: number; goodput: number }[];
  ttftCdf: [number, number][];
  tbtCdf: [number, number][];
  timeline: TimelineEntry[];
}

export function buildReport(
  meta: { accelerator: string; policy: string; devices: number },
  result: SimResult,
  sweep: SimulationReport["sweep"],
  timelineUntilMs: number,
): SimulationReport {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    ...meta,
    requests: result.summary.met.length,
    report: Object.fromEntries(Object.entries(result.report).map(([k, v]) => [k, typeof v === "number" ? round(v) : v])) as unknown as SloReport,
    utilization: round(result.utilization),
    switches: result.switches,
    sweep: sweep.map((s) => ({ devices: s.devices, attainment: round(s.attainment), goodput: round(s.goodput) })),
    ttftCdf: cdf(result.summary.ttftsMs),
    tbtCdf: cdf(result.summary.gapsMs),
    timeline: result.timeline.filter((e) => e.startMs < timelineUntilMs).map((e) => ({ ...e, startMs: round(e.startMs), endMs: round(Math.min(e.endMs, timelineUntilMs)) })),
  };
}
