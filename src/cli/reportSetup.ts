/**
 * Describes a run for the report headers (views/reportHeader.ts): the workload spec and the
 * SLO targets in a line each, numbers rounded for people.
 */
import type { SloTargets } from "../core/types.ts";
import type { planWorkloadSchema } from "../sim/planInputs.ts";
import { formatMs } from "../views/reportHeader.ts";
import type { z } from "zod";

type PlanWorkload = z.infer<typeof planWorkloadSchema>;
type Length = PlanWorkload["inputTokens"];

const num = (x: number) => String(+x.toFixed(2));

function length(l: Length): string {
  if (typeof l === "number") return `${l}`;
  if ("uniform" in l) return `uniform ${l.uniform[0]}–${l.uniform[1]}`;
  return `mean ${num(l.mean)} (cv ${num(l.cv)}, ${l.min}–${l.max})`;
}

/** "8 req/s for 120 s, Poisson arrivals, Zipf popularity (s 1.2), …" */
export function describeWorkload(w: PlanWorkload, models: number): string {
  const parts: string[] = [];
  if (w.trace) parts.push(`trace ${w.trace.file}${w.trace.speedup ? ` at ${num(w.trace.speedup)}× speed` : ""}, first ${num(w.durationSeconds)} s`);
  else {
    parts.push(`${num(w.ratePerSecond)} req/s for ${num(w.durationSeconds)} s`);
    parts.push(w.arrivals.kind === "poisson" ? "Poisson arrivals" : `gamma arrivals (cv ${num(w.arrivals.cv)})`);
  }
  parts.push(`${w.popularity.kind === "zipf" ? `Zipf popularity (s ${num(w.popularity.s)})` : "uniform popularity"} over ${w.models?.length ?? models} models`);
  if (w.documents) {
    const d = w.documents;
    parts.push(
      `documents: ${d.pagesPerRequest} page(s) × ${d.visionTokensPerPage} vision tokens + ${d.promptTokens} prompt tokens in, ${d.outputTokensPerPage} tokens out per page`,
    );
  } else if (!w.trace) parts.push(`input tokens ${length(w.inputTokens)}, output tokens ${length(w.outputTokens)}`);
  return parts.join(", ");
}

/** "TTFT 10 s, TBT 100 ms for all 28 models", or one clause per distinct target. */
export function describeSlo(models: string[], slo: (m: string) => SloTargets): string {
  const groups = new Map<string, string[]>();
  for (const m of models) {
    const t = slo(m);
    const key = `TTFT ${formatMs(t.ttftMs)}, TBT ${formatMs(t.tbtMs)}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  if (groups.size === 1) return `${[...groups.keys()][0]} for ${models.length === 1 ? models[0] : `all ${models.length} models`}`;
  return [...groups].map(([k, ms]) => `${k} for ${ms.length <= 3 ? ms.join(", ") : `${ms.length} models (${ms.slice(0, 2).join(", ")}, …)`}`).join("; ");
}
