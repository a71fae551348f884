/**
 * Trace replay: CSV traces such as the Azure LLM inference trace (TIMESTAMP, ContextTokens,
 * GeneratedTokens), with an optional model column or a rule that assigns models.
 */
import fs from "node:fs";
import { createRng, deriveSeed } from "../core/random.ts";
import { popularityWeights, type WorkloadRequest, type WorkloadSpec } from "./workload.ts";

export interface TraceOptions {
  file: string;
  /** Column holding the model id; otherwise models are assigned by `popularity`. */
  modelColumn?: string;
  models: string[];
  popularity: WorkloadSpec["popularity"];
  seed: number;
  /** Keep only the first N seconds. */
  durationSeconds?: number;
  /** Speed the trace up (2 = twice the rate). */
  speedup?: number;
}

function parseTime(v: string): number {
  const n = Number(v);
  if (Number.isFinite(n)) return n * 1000; // seconds
  const t = Date.parse(v.replace(" ", "T").replace(/(\.\d{3})\d+/, "$1") + (/[zZ+]/.test(v.slice(10)) ? "" : "Z"));
  if (Number.isNaN(t)) throw new Error(`trace: cannot read timestamp '${v}'`);
  return t;
}

export function readTrace(o: TraceOptions): WorkloadRequest[] {
  const lines = fs.readFileSync(o.file, "utf8").trim().split(/\r?\n/);
  const head = lines[0]!.split(",").map((h) => h.trim());
  const find = (names: string[]) => head.findIndex((h) => names.some((n) => h.toLowerCase() === n.toLowerCase()));
  const ts = find(["TIMESTAMP", "timestamp", "time", "arrival"]);
  const input = find(["ContextTokens", "input_tokens", "prompt_tokens", "input"]);
  const output = find(["GeneratedTokens", "output_tokens", "completion_tokens", "output"]);
  const modelCol = o.modelColumn ? head.indexOf(o.modelColumn) : -1;
  if (ts < 0 || input < 0 || output < 0) throw new Error(`trace ${o.file}: needs timestamp, input and output token columns (found ${head.join(", ")})`);
  if (o.modelColumn && modelCol < 0) throw new Error(`trace ${o.file}: no column '${o.modelColumn}'`);
  const rng = createRng(deriveSeed(o.seed, "trace-models"));
  const weights = popularityWeights(o.models.length, o.popularity);
  const rows = lines.slice(1).map((l) => l.split(","));
  const t0 = parseTime(rows[0]![ts]!);
  const out: WorkloadRequest[] = [];
  for (const [i, c] of rows.entries()) {
    const arrivalMs = (parseTime(c[ts]!) - t0) / (o.speedup ?? 1);
    if (o.durationSeconds !== undefined && arrivalMs >= o.durationSeconds * 1000) break;
    let modelId: string;
    if (modelCol >= 0) modelId = c[modelCol]!;
    else {
      let u = rng.next();
      let m = 0;
      while (m < weights.length - 1 && u >= weights[m]!) u -= weights[m++]!;
      modelId = o.models[m]!;
    }
    out.push({ index: i, modelId, arrivalMs, inputTokens: Math.max(1, Number(c[input])), outputTokens: Math.max(1, Number(c[output])) });
  }
  return out.sort((a, b) => a.arrivalMs - b.arrivalMs || a.index - b.index);
}
