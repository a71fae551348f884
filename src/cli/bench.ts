/**
 * Composition root of `pitcher bench`: replays a workload open-loop against any
 * OpenAI-compatible endpoint at one or more rates and scores it with the deadline SLO.
 */
import fs from "node:fs";
import YAML from "yaml";
import cliProgress from "cli-progress";
import { ConfigError } from "../core/errors.ts";
import { cdfPoints, sloReport, type SloReport } from "../core/slo.ts";
import type { SloTargets } from "../core/types.ts";
import { formatZodError } from "../core/formatZodError.ts";
import path from "node:path";
import { benchReportHtml, type BenchReport, type BenchRow, type TenantReport } from "../views/benchReportHtml.ts";
import { type LoadResult, runLoad } from "../loadgen/loadClient.ts";
import type { ReportSetup } from "../views/reportHeader.ts";
import { generateWorkload, type WorkloadRequest, workloadSchema, type WorkloadSpec } from "../workload/workload.ts";
import { describeSlo, describeWorkload } from "./reportSetup.ts";

export interface BenchArgs {
  url: string;
  workload?: string;
  rates?: number[];
  /** Scoring targets when the server does not publish per-model SLOs. */
  ttftMs: number;
  tbtMs: number;
  progress: boolean;
  drainTimeoutMs?: number;
  /** Bearer key for requests whose workload tenant names none (and for the model list). */
  apiKey?: string;
}

export type { BenchRow };

/** Models and their SLOs as the server lists them (Pitcher publishes `meta.slo`); embedding models are left out (the load is generation). */
async function serverModels(url: string, apiKey: string | undefined): Promise<{ ids: string[]; slo: Map<string, SloTargets> }> {
  const res = await fetch(`${url}/v1/models`, apiKey ? { headers: { authorization: `Bearer ${apiKey}` } } : {});
  if (!res.ok)
    throw new ConfigError(`${url}/v1/models answered ${res.status}${res.status === 401 ? " (the server wants an API key: --api-key, or a key per workload tenant)" : ""}`);
  const all = (await res.json()) as { data: { id: string; meta?: { slo?: { ttft_ms: number; tbt_ms: number }; embedding?: boolean } }[] };
  const body = { data: all.data.filter((m) => !m.meta?.embedding) };
  const slo = new Map<string, SloTargets>();
  for (const m of body.data) if (m.meta?.slo) slo.set(m.id, { ttftMs: m.meta.slo.ttft_ms, tbtMs: m.meta.slo.tbt_ms });
  return { ids: body.data.map((m) => m.id), slo };
}

const baseUrl = (url: string) => url.replace(/\/+$/, "").replace(/\/v1$/, "");

function readWorkload(file: string | undefined): WorkloadSpec {
  let raw: unknown = {};
  if (file) {
    try {
      const text = fs.readFileSync(file, "utf8");
      raw = file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
    } catch (e) {
      throw new ConfigError(`${file}: ${(e as Error).message}`);
    }
  }
  const parsed = workloadSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(`${file ?? "workload"}: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/** The report header of a bench run: target, workload, rates, SLO targets (as scored), seed. */
export async function describeBench(a: BenchArgs): Promise<ReportSetup> {
  const url = baseUrl(a.url);
  const w = readWorkload(a.workload);
  const { ids, slo } = await serverModels(url, listingKey(a, w));
  const rates = a.rates ?? [w.ratePerSecond];
  return [
    ["target", url],
    ["workload", `${a.workload ?? "default"}: ${describeWorkload({ ...w, ratePerSecond: rates[0]! }, ids.length)}`],
    ["rates", `${rates.join(", ")} req/s`],
    ["SLO targets", describeSlo(ids, (m) => slo.get(m) ?? { ttftMs: a.ttftMs, tbtMs: a.tbtMs })],
    ["seed", String(w.seed)],
    ...(w.tenants ? [["tenants", w.tenants.map((t) => `${t.name} (share ${t.share})`).join(", ")] as [string, string]] : []),
  ];
}

export async function runBench(a: BenchArgs): Promise<BenchRow[]> {
  const url = baseUrl(a.url);
  const workload = readWorkload(a.workload);
  const { ids, slo } = await serverModels(url, listingKey(a, workload));
  const tenantKeys = new Map((workload.tenants ?? []).flatMap((t) => (t.key ? [[t.name, t.key] as const] : [])));
  const sloOf = (m: string) => slo.get(m) ?? { ttftMs: a.ttftMs, tbtMs: a.tbtMs };
  const rows: BenchRow[] = [];
  for (const rate of a.rates ?? [workload.ratePerSecond]) {
    const requests = generateWorkload({ ...workload, ratePerSecond: rate }, ids);
    const bar = a.progress ? new cliProgress.SingleBar({ format: `${rate} req/s [{bar}] {value}/{total} done` }, cliProgress.Presets.shades_classic) : undefined;
    bar?.start(requests.length, 0);
    const load = await runLoad(requests, {
      baseUrl: url,
      ...(a.drainTimeoutMs ? { drainTimeoutMs: a.drainTimeoutMs } : {}),
      ...(a.apiKey ? { apiKey: a.apiKey } : {}),
      tenantKeys,
      onDone: () => bar?.increment(),
    });
    bar?.stop();
    const perModel: Record<string, SloReport> = {};
    for (const m of [...new Set(load.traces.map((t) => t.modelId))].sort())
      perModel[m] = sloReport(
        load.traces.filter((t) => t.modelId === m),
        sloOf,
        load.durationMs,
      );
    const ttft: number[] = [];
    const gaps: number[] = [];
    for (const t of load.traces) {
      if (t.tokenTimesMs.length > 0) ttft.push(t.tokenTimesMs[0]! - t.arrivalMs);
      for (let k = 1; k < t.tokenTimesMs.length; k++) gaps.push(t.tokenTimesMs[k]! - t.tokenTimesMs[k - 1]!);
    }
    const row: BenchRow = { rate, overall: sloReport(load.traces, sloOf, load.durationMs), perModel, errors: load.errors, ttftCdf: cdfPoints(ttft), tbtCdf: cdfPoints(gaps) };
    if (workload.tenants) row.perTenant = perTenant(requests, load, sloOf);
    rows.push(row);
  }
  return rows;
}

/** The key the model list is asked with: `--api-key`, else the first tenant's. */
function listingKey(a: BenchArgs, w: WorkloadSpec): string | undefined {
  return a.apiKey ?? w.tenants?.find((t) => t.key)?.key;
}

/** Each tenant's score and errors (the load's traces and errors are in the workload's order). */
function perTenant(requests: WorkloadRequest[], load: LoadResult, sloOf: (m: string) => SloTargets): Record<string, TenantReport> {
  const out: Record<string, TenantReport> = {};
  for (const name of [...new Set(requests.map((r) => r.tenant!.id))]) {
    const mine = requests.flatMap((r, i) => (r.tenant!.id === name ? [i] : []));
    const errors: Record<string, number> = {};
    for (const i of mine) {
      const e = load.requestErrors[i];
      if (e) errors[e] = (errors[e] ?? 0) + 1;
    }
    out[name] = {
      ...sloReport(
        mine.map((i) => load.traces[i]!),
        sloOf,
        load.durationMs,
      ),
      errors,
    };
  }
  return out;
}

export function formatBenchTable(rows: BenchRow[]): string {
  const head = ["rate/s", "requests", "attainment", "on-schedule", "goodput/s", "TTFT p50", "TTFT p99", "TBT p50", "TBT p99", "gaps>TBT", "errors"];
  const lines = rows.map((r) => [
    String(r.rate),
    String(r.overall.requests),
    r.overall.attainment.toFixed(3),
    r.overall.onScheduleScore.toFixed(3),
    r.overall.goodput.toFixed(2),
    r.overall.ttftP50Ms.toFixed(0),
    r.overall.ttftP99Ms.toFixed(0),
    r.overall.tbtP50Ms.toFixed(0),
    r.overall.tbtP99Ms.toFixed(0),
    (r.overall.gapsOverTbt * 100).toFixed(1) + "%",
    Object.entries(r.errors)
      .map(([k, v]) => `${k}:${v}`)
      .join(" ") || "-",
  ]);
  const tenantHead = ["rate/s", "tenant", "requests", "attainment", "goodput/s", "TTFT p50", "TTFT p99", "errors"];
  const tenantLines = rows.flatMap((r) =>
    Object.entries(r.perTenant ?? {}).map(([name, t]) => [
      String(r.rate),
      name,
      String(t.requests),
      t.attainment.toFixed(3),
      t.goodput.toFixed(2),
      t.ttftP50Ms.toFixed(0),
      t.ttftP99Ms.toFixed(0),
      Object.entries(t.errors)
        .map(([k, v]) => `${k}:${v}`)
        .join(" ") || "-",
    ]),
  );
  const table = (h: string[], ls: string[][]) => {
    const w = h.map((x, i) => Math.max(x.length, ...ls.map((l) => l[i]!.length)));
    const fmt = (c: string[]) => c.map((x, i) => x.padStart(w[i]!)).join("  ");
    return [fmt(h), ...ls.map(fmt)].join("\n");
  };
  return tenantLines.length ? `${table(head, lines)}\n\n${table(tenantHead, tenantLines)}` : table(head, lines);
}

/** `--report <prefix>`: the rows as JSON and as a page with charts. */
export function writeBenchReport(prefix: string, report: BenchReport): string[] {
  fs.mkdirSync(path.dirname(path.resolve(prefix)), { recursive: true });
  const files = [`${prefix}.json`, `${prefix}.html`];
  fs.writeFileSync(files[0]!, JSON.stringify(report, null, 1));
  fs.writeFileSync(files[1]!, benchReportHtml(report));
  return files;
}
