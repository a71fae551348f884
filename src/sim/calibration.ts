/**
 * Checks the cost model against measured vLLM step times (../shared/data/vllm-step-profiles.csv):
 * relative error of prefill and decode per accelerator and model.
 */
import fs from "node:fs";
import { findAccelerator, type AcceleratorSpec } from "./accelerators.ts";
import { decodeStepMs, prefillMs } from "./costModel.ts";
import { findModelPreset, PROFILE_MODEL_NAMES } from "./modelPresets.ts";

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

/** Relative errors of the model's predictions for each profile row it can map. */
export function predictionErrors(rows: ProfileRow[], accOverride?: (device: string) => AcceleratorSpec | undefined) {
  const out: { device: string; model: string; prefill: number; decode: number }[] = [];
  for (const r of rows) {
    const acc = accOverride ? accOverride(r.device) : findAccelerator(r.device);
    const m = findModelPreset(PROFILE_MODEL_NAMES[r.model] ?? "");
    if (!acc || !m) continue;
    const p = prefillMs(acc, m, r.inputLen, r.batch) / 1000;
    // vLLM's decode iteration after prefilling `batch` prompts of `inputLen` tokens.
    const d = decodeStepMs(acc, m, r.batch, r.inputLen) / 1000;
    out.push({ device: r.device, model: r.model, prefill: Math.abs(p - r.prefillS) / r.prefillS, decode: Math.abs(d - r.decodeS) / r.decodeS });
  }
  return out;
}

export function errorTable(rows: ProfileRow[]): ErrorRow[] {
  const errs = predictionErrors(rows);
  const keys = [...new Set(errs.map((e) => `${e.device}|${e.model}`))].sort();
  return keys.map((k) => {
    const [device, model] = k.split("|") as [string, string];
    const mine = errs.filter((e) => e.device === device && e.model === model);
    return { device, model, rows: mine.length, prefillMedianAbsErr: median(mine.map((e) => e.prefill)), decodeMedianAbsErr: median(mine.map((e) => e.decode)) };
  });
}

export function medianErrors(rows: ProfileRow[]): { prefill: number; decode: number; byDevice: Record<string, { prefill: number; decode: number }> } {
  const errs = predictionErrors(rows);
  const byDevice: Record<string, { prefill: number; decode: number }> = {};
  for (const d of [...new Set(errs.map((e) => e.device))].sort()) {
    const mine = errs.filter((e) => e.device === d);
    byDevice[d] = { prefill: median(mine.map((e) => e.prefill)), decode: median(mine.map((e) => e.decode)) };
  }
  return { prefill: median(errs.map((e) => e.prefill)), decode: median(errs.map((e) => e.decode)), byDevice };
}
