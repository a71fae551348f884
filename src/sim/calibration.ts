/**
 * Checks the cost model against measured vLLM step times (../shared/data/vllm-step-profiles.csv):
 * relative error of prefill and decode per accelerator and model, in sample (the catalog's
 * coefficients) and leaving each accelerator out of the fit in turn (`leaveOneOut`), which is
 * how well the model predicts an accelerator it has never seen from its specs alone.
 */
import fs from "node:fs";
import { findAccelerator, SHARED_ACCELERATOR_FACTORS, type AcceleratorSpec } from "./accelerators.ts";
import { decodeStepMs, prefillMs, SHARED_COEFFICIENTS, type SharedCoefficients } from "./costModel.ts";
import { findModelPreset, PROFILE_MODEL_NAMES, type SimModelSpec } from "./modelPresets.ts";

/**
 * The profiles' prefill step holds at most this many prompt tokens (vLLM's
 * max_num_batched_tokens of those runs: the measured prefill time stops growing there, at
 * whole prompts). The H800 runs had a larger budget (no plateau up to 8,192 tokens).
 * A setting of the measurement, not of the hardware: used for every accelerator, left out
 * or not.
 */
export const PROFILE_PREFILL_TOKEN_BUDGET: Record<string, number> = { A10: 4096, A100: 4096, H100: 4096 };

/** Prompts the measured prefill step actually ran: whole prompts within the token budget. */
export function prefilledSequences(r: ProfileRow): number {
  const budget = PROFILE_PREFILL_TOKEN_BUDGET[r.device] ?? Number.POSITIVE_INFINITY;
  return Math.min(r.batch, Math.max(1, Math.floor(budget / r.inputLen)));
}

/**
 * Whether the prompts fit one prefill step. When they do not, the rest are prefilled during
 * the measured "decode iterations", whose average then mixes in prefill: those rows check
 * prefill only.
 */
export function fitsOnePrefill(r: ProfileRow): boolean {
  return prefilledSequences(r) === r.batch;
}

export interface ProfileRow {
  model: string;
  device: string;
  inputLen: number;
  batch: number;
  prefillS: number;
  decodeS: number;
}

export function readProfiles(file: string): ProfileRow[] {
  const lines = fs.readFileSync(file, "utf8").trim().split("\n");
  const head = lines[0]!.split(",");
  const col = (n: string) => head.indexOf(n);
  return lines.slice(1).map((l) => {
    const c = l.split(",");
    return {
      model: c[col("model")]!,
      device: c[col("device")]!,
      inputLen: Number(c[col("input_len")]),
      batch: Number(c[col("batch_size")]),
      prefillS: Number(c[col("p50_prefill_s")]),
      decodeS: Number(c[col("p50_decode_iter_s")]),
    };
  });
}

export interface ErrorRow {
  device: string;
  model: string;
  rows: number;
  prefillMedianAbsErr: number;
  decodeMedianAbsErr: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const decodes = (errs: { decode: number | undefined }[]) => errs.flatMap((e) => (e.decode === undefined ? [] : [e.decode]));

/** Relative errors of the model's predictions for each profile row it can map. */
export function predictionErrors(rows: ProfileRow[], accOverride?: (device: string) => AcceleratorSpec | undefined, coefficients = SHARED_COEFFICIENTS) {
  const out: { device: string; model: string; prefill: number; decode: number | undefined }[] = [];
  for (const r of rows) {
    const acc = accOverride ? accOverride(r.device) : findAccelerator(r.device);
    const m = findModelPreset(PROFILE_MODEL_NAMES[r.model] ?? "");
    if (!acc || !m) continue;
    const p = prefillMs(acc, m, r.inputLen, prefilledSequences(r), coefficients) / 1000;
    // vLLM's decode iteration after prefilling `batch` prompts of `inputLen` tokens.
    const d = decodeStepMs(acc, m, r.batch, r.inputLen, coefficients) / 1000;
    const decode = fitsOnePrefill(r) ? Math.abs(d - r.decodeS) / r.decodeS : undefined;
    out.push({ device: r.device, model: r.model, prefill: Math.abs(p - r.prefillS) / r.prefillS, decode });
  }
  return out;
}

export function errorTable(rows: ProfileRow[]): ErrorRow[] {
  const errs = predictionErrors(rows);
  const keys = [...new Set(errs.map((e) => `${e.device}|${e.model}`))].sort();
  return keys.map((k) => {
    const [device, model] = k.split("|") as [string, string];
    const mine = errs.filter((e) => e.device === device && e.model === model);
    return { device, model, rows: mine.length, prefillMedianAbsErr: median(mine.map((e) => e.prefill)), decodeMedianAbsErr: median(decodes(mine)) };
  });
}

export function medianErrors(rows: ProfileRow[]): { prefill: number; decode: number; byDevice: Record<string, { prefill: number; decode: number }> } {
  const errs = predictionErrors(rows);
  const byDevice: Record<string, { prefill: number; decode: number }> = {};
  for (const d of [...new Set(errs.map((e) => e.device))].sort()) {
    const mine = errs.filter((e) => e.device === d);
    byDevice[d] = { prefill: median(mine.map((e) => e.prefill)), decode: median(decodes(mine)) };
  }
  return { prefill: median(errs.map((e) => e.prefill)), decode: median(decodes(errs)), byDevice };
}

/** Everything the shared fit sets: the four per-accelerator factors (the same on all) and the shared coefficients. */
export interface FittedCoefficients {
  accelerator: Pick<AcceleratorSpec, "bandwidthEfficiency" | "computeEfficiency" | "stepOverheadMs" | "perSequenceMs">;
  shared: SharedCoefficients;
}

const PARAMS = [
  "bandwidthEfficiency",
  "computeEfficiency",
  "stepOverheadMs",
  "perSequenceMs",
  "layerMs",
  "moeLayerMs",
  "kvEfficiency",
  "attentionEfficiency",
  "sequenceGflop",
  "moeFlopsPerByte",
] as const;
const EFFICIENCIES = new Set(["bandwidthEfficiency", "computeEfficiency", "kvEfficiency", "attentionEfficiency"]);

function unpack(v: number[]): FittedCoefficients {
  const [bandwidthEfficiency, computeEfficiency, stepOverheadMs, perSequenceMs, layerMs, moeLayerMs, kvEfficiency, attentionEfficiency, sequenceGflop, moeFlopsPerByte] = v as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return {
    accelerator: { bandwidthEfficiency, computeEfficiency, stepOverheadMs, perSequenceMs },
    shared: { layerMs, moeLayerMs, kvEfficiency, attentionEfficiency, sequenceGflop, moeFlopsPerByte },
  };
}

interface Sample {
  device: string;
  acc: AcceleratorSpec;
  m: SimModelSpec;
  row: ProfileRow;
}

function samples(rows: ProfileRow[]): Sample[] {
  const out: Sample[] = [];
  for (const row of rows) {
    const acc = findAccelerator(row.device);
    const m = findModelPreset(PROFILE_MODEL_NAMES[row.model] ?? "");
    if (acc && m) out.push({ device: row.device, acc, m, row });
  }
  return out;
}

/**
 * Mean absolute relative error of decode and prefill, each accelerator weighted equally (the
 * profiles hold many more H800 rows than the others: unweighted, the fit would be H800's).
 */
function loss(ss: Sample[], f: FittedCoefficients): number {
  const byDevice = new Map<string, { sum: number; n: number }>();
  for (const s of ss) {
    const acc = { ...s.acc, ...f.accelerator };
    const d = fitsOnePrefill(s.row) ? decodeStepMs(acc, s.m, s.row.batch, s.row.inputLen, f.shared) / 1000 : s.row.decodeS;
    const p = prefillMs(acc, s.m, s.row.inputLen, prefilledSequences(s.row), f.shared) / 1000;
    const e = Math.abs(d - s.row.decodeS) / s.row.decodeS + Math.abs(p - s.row.prefillS) / s.row.prefillS;
    const acc2 = byDevice.get(s.device) ?? { sum: 0, n: 0 };
    acc2.sum += e;
    acc2.n += 1;
    byDevice.set(s.device, acc2);
  }
  let total = 0;
  for (const { sum, n } of byDevice.values()) total += sum / n;
  return total / byDevice.size;
}

/**
 * Fits the coefficients shared by all accelerators to the given profile rows: coordinate
 * descent on multiplicative steps from the catalog's values (deterministic; the loss is
 * smooth enough in these few, positive, parameters).
 */
export function fitCoefficients(rows: ProfileRow[]): FittedCoefficients {
  const ss = samples(rows);
  const start = { ...SHARED_ACCELERATOR_FACTORS, ...SHARED_COEFFICIENTS };
  let v = PARAMS.map((k) => start[k]);
  let best = loss(ss, unpack(v));
  for (const step of [1.5, 1.15, 1.03]) {
    for (let round = 0, improved = true; improved && round < 40; round++) {
      improved = false;
      for (let i = 0; i < v.length; i++) {
        for (const f of [step, 1 / step]) {
          const next = [...v];
          next[i] = Math.max(1e-4, v[i]! * f);
          if (EFFICIENCIES.has(PARAMS[i]!)) next[i] = Math.min(1, next[i]!);
          const l = loss(ss, unpack(next));
          if (l < best - 1e-9) {
            best = l;
            v = next;
            improved = true;
          }
        }
      }
    }
  }
  return unpack(v);
}

export interface LeaveOneOutRow {
  /** The accelerator left out of the fit and predicted from its specs. */
  device: string;
  /** A model, or "all" for the accelerator as a whole. */
  model: string;
  rows: number;
  prefillMedianAbsErr: number;
  decodeMedianAbsErr: number;
}

/** Fit on every profiled accelerator but one, predict that one; each accelerator in turn. */
export function leaveOneOut(rows: ProfileRow[]): { rows: LeaveOneOutRow[]; fits: Record<string, FittedCoefficients> } {
  const devices = [...new Set(samples(rows).map((s) => s.device))].sort();
  const out: LeaveOneOutRow[] = [];
  const fits: Record<string, FittedCoefficients> = {};
  for (const device of devices) {
    const f = fitCoefficients(rows.filter((r) => r.device !== device));
    fits[device] = f;
    const errs = predictionErrors(
      rows.filter((r) => r.device === device),
      (d) => {
        const a = findAccelerator(d);
        return a && { ...a, ...f.accelerator };
      },
      f.shared,
    );
    const summarise = (model: string, mine: typeof errs) =>
      out.push({ device, model, rows: mine.length, prefillMedianAbsErr: median(mine.map((e) => e.prefill)), decodeMedianAbsErr: median(decodes(mine)) });
    summarise("all", errs);
    for (const model of [...new Set(errs.map((e) => e.model))].sort())
      summarise(
        model,
        errs.filter((e) => e.model === model),
      );
  }
  return { rows: out, fits };
}
