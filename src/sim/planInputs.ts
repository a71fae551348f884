/**
 * Files a planner user writes: the model catalog (presets or explicit shapes, instance
 * counts, per-model SLOs), the accelerator (a preset or a custom spec) and the workload
 * (synthetic market, trace replay, or document pages read as vision tokens).
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { ConfigError } from "../core/errors.ts";
import { DEFAULT_SLO, resolveSlo, type SloTargets } from "../core/types.ts";
import { formatZodError } from "../core/formatZodError.ts";
import { readTrace } from "../workload/trace.ts";
import { generateWorkload, workloadSchema, type WorkloadRequest } from "../workload/workload.ts";
import { ACCELERATORS, findAccelerator, SHARED_ACCELERATOR_FACTORS, type AcceleratorSpec } from "./accelerators.ts";
import { DEFAULT_MARKET_WORKLOAD, defaultMarketModels } from "./market.ts";
import { machineProfileSchema, type MachineProfile } from "./machineProfile.ts";
import { findModelPreset, MODEL_PRESETS, type SimModelSpec } from "./modelPresets.ts";

const sloSchema = z.object({ ttftMs: z.number().positive().optional(), tbtMs: z.number().positive().optional() }).strict();
const formatSchema = z.enum(["bf16", "fp16", "fp8", "int8", "q8", "q4"]);

const catalogEntry = z
  .object({
    id: z.string().optional(),
    preset: z.string().optional(),
    totalParams: z.number().positive().optional(),
    activeParams: z.number().positive().optional(),
    layers: z.number().int().positive().optional(),
    hiddenSize: z.number().int().positive().optional(),
    kvHeads: z.number().int().positive().optional(),
    headDim: z.number().int().positive().optional(),
    format: formatSchema.optional(),
    experts: z.object({ count: z.number().int().positive(), used: z.number().int().positive() }).strict().optional(),
    visionTokensPerPage: z.number().int().positive().optional(),
    /** Instances of this model in the market (fine-tunes of one base). */
    count: z.number().int().min(1).default(1),
    slo: sloSchema.optional(),
  })
  .strict();

export const catalogSchema = z
  .object({
    defaults: z
      .object({ slo: sloSchema.default({}) })
      .strict()
      .default({}),
    models: z.array(catalogEntry).min(1),
    accelerators: z
      .array(
        z
          .object({
            id: z.string(),
            bf16Tflops: z.number().positive(),
            fp8Tflops: z.number().min(0).default(0),
            memoryGB: z.number().positive(),
            memoryBandwidthTBs: z.number().positive(),
            hostLinkGBs: z.number().positive(),
            // Specs alone give the first guess: the factors every catalog accelerator shares.
            bandwidthEfficiency: z.number().gt(0).max(1).default(SHARED_ACCELERATOR_FACTORS.bandwidthEfficiency),
            computeEfficiency: z.number().gt(0).max(1).default(SHARED_ACCELERATOR_FACTORS.computeEfficiency),
            stepOverheadMs: z.number().min(0).default(SHARED_ACCELERATOR_FACTORS.stepOverheadMs),
            perSequenceMs: z.number().min(0).default(SHARED_ACCELERATOR_FACTORS.perSequenceMs),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

export const planWorkloadSchema = workloadSchema.extend({
  trace: z.object({ file: z.string(), modelColumn: z.string().optional(), speedup: z.number().positive().optional() }).strict().optional(),
  /** Requests are document pages read as vision tokens: input = pages × visionTokensPerPage + prompt. */
  documents: z
    .object({
      pagesPerRequest: z.number().int().min(1).default(1),
      visionTokensPerPage: z.union([z.literal(64), z.literal(100), z.literal(256), z.literal(400), z.number().int().positive()]).default(100),
      promptTokens: z.number().int().min(0).default(16),
      outputTokensPerPage: z.number().int().positive().default(1000),
    })
    .strict()
    .optional(),
});

export interface Market {
  models: SimModelSpec[];
  slo: Map<string, SloTargets>;
  extraAccelerators: AcceleratorSpec[];
}

function readFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
}

export function loadMarket(file: string | undefined): Market {
  if (!file) {
    const models = defaultMarketModels();
    return { models, slo: new Map(models.map((m) => [m.id, { ...DEFAULT_SLO }])), extraAccelerators: [] };
  }
  const parsed = catalogSchema.safeParse(readFile(file));
  if (!parsed.success) throw new ConfigError(`${file}: ${formatZodError(parsed.error)}`);
  const cat = parsed.data;
  const models: SimModelSpec[] = [];
  const slo = new Map<string, SloTargets>();
  for (const [i, e] of cat.models.entries()) {
    const base = e.preset ? findModelPreset(e.preset) : undefined;
    if (e.preset && !base) throw new ConfigError(`${file}: models.${i}.preset: unknown preset '${e.preset}' (known: ${MODEL_PRESETS.map((m) => m.id).join(", ")})`);
    const spec = { ...base, ...Object.fromEntries(Object.entries(e).filter(([k, v]) => v !== undefined && !["count", "slo", "preset"].includes(k))) } as Partial<SimModelSpec>;
    for (const k of ["totalParams", "layers", "hiddenSize", "kvHeads", "headDim"] as const)
      if (spec[k] === undefined) throw new ConfigError(`${file}: models.${i}: ${k} is required without a preset`);
    const id = e.id ?? e.preset ?? `model-${i}`;
    for (let n = 1; n <= e.count; n++) {
      const m: SimModelSpec = {
        ...(spec as SimModelSpec),
        format: spec.format ?? "bf16",
        activeParams: spec.activeParams ?? spec.totalParams!,
        id: e.count > 1 ? `${id}-${n}` : id,
      };
      models.push(m);
      slo.set(m.id, resolveSlo(DEFAULT_SLO, cat.defaults.slo, e.slo));
    }
  }
  return { models, slo, extraAccelerators: cat.accelerators };
}

export function resolveAccelerator(id: string, market: Market): AcceleratorSpec {
  const a = market.extraAccelerators.find((x) => x.id.toLowerCase() === id.toLowerCase()) ?? findAccelerator(id);
  if (!a) throw new ConfigError(`unknown accelerator '${id}' (known: ${[...ACCELERATORS, ...market.extraAccelerators].map((x) => x.id).join(", ")})`);
  return a;
}

/** A machine profile written by `pitcher profile`, validated. */
export function loadMachineProfile(file: string): MachineProfile {
  const parsed = machineProfileSchema.safeParse(readFile(file));
  if (!parsed.success) throw new ConfigError(`${file}: not a machine profile written by \`pitcher profile\`: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/**
 * The requests of a workload file (or of `defaultWorkload` without one) over the given
 * models. Default: the embedded market's workload.
 */
/** The workload spec as parsed (defaults filled in): what reports print as the workload. */
export function loadWorkloadSpec(
  file: string | undefined,
  overrides: { seed?: number | undefined; durationSeconds?: number | undefined; ratePerSecond?: number | undefined } = {},
  defaultWorkload: unknown = DEFAULT_MARKET_WORKLOAD,
): z.infer<typeof planWorkloadSchema> {
  const raw = file ? readFile(file) : defaultWorkload;
  const parsed = planWorkloadSchema.safeParse({ ...(raw as object), ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
  if (!parsed.success) throw new ConfigError(`${file ?? "default workload"}: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

export function loadWorkload(
  file: string | undefined,
  modelIds: string[],
  overrides: { seed?: number | undefined; durationSeconds?: number | undefined; ratePerSecond?: number | undefined } = {},
  defaultWorkload: unknown = DEFAULT_MARKET_WORKLOAD,
): WorkloadRequest[] {
  const w = loadWorkloadSpec(file, overrides, defaultWorkload);
  const ids = modelIds;
  let requests: WorkloadRequest[];
  if (w.trace) {
    if (w.tenants) throw new ConfigError("workload: tenants split generated arrivals; a replayed trace has none to split (drop `tenants` or `trace`)");
    const traceFile = file ? path.resolve(path.dirname(file), w.trace.file) : w.trace.file;
    requests = readTrace({
      file: traceFile,
      models: w.models ?? ids,
      popularity: w.popularity,
      seed: w.seed,
      durationSeconds: w.durationSeconds,
      ...(w.trace.modelColumn ? { modelColumn: w.trace.modelColumn } : {}),
      ...(w.trace.speedup ? { speedup: w.trace.speedup } : {}),
    });
    for (const r of requests) if (!ids.includes(r.modelId)) throw new ConfigError(`trace names model '${r.modelId}', which the catalog lacks`);
  } else {
    requests = generateWorkload(w, ids);
  }
  if (w.documents) {
    const d = w.documents;
    requests = requests.map((r) => ({ ...r, inputTokens: d.promptTokens + d.pagesPerRequest * d.visionTokensPerPage, outputTokens: d.pagesPerRequest * d.outputTokensPerPage }));
  }
  return requests;
}
