/**
 * Workload descriptions shared by the load generator (`pitcher bench`) and the fleet
 * simulator (`pitcher plan`): models with a popularity, an arrival process, input and
 * output lengths and a seed. Generation is pure and seeded: the same spec gives the same
 * requests, byte for byte. Arrivals and lengths draw from separate streams, so changing
 * the rate does not reshuffle the lengths.
 */
import { z } from "zod";
import { createRng, deriveSeed, sampleExponential, sampleGamma, type Rng } from "../core/random.ts";

const lengthSchema = z.union([
  z.number().int().min(1),
  z.object({ uniform: z.tuple([z.number().int().min(1), z.number().int().min(1)]) }).strict(),
  /** Log-normal by mean and coefficient of variation, clamped to [min, max]. */
  z.object({ mean: z.number().positive(), cv: z.number().min(0), min: z.number().int().min(1).default(1), max: z.number().int().min(1).default(32768) }).strict(),
]);

export const workloadSchema = z
  .object({
    seed: z.number().int().default(1),
    durationSeconds: z.number().positive().default(60),
    /** Total arrival rate over all models. */
    ratePerSecond: z.number().positive().default(4),
    arrivals: z.union([z.object({ kind: z.literal("poisson") }).strict(), z.object({ kind: z.literal("gamma"), cv: z.number().positive() }).strict()]).default({ kind: "poisson" }),
    /** Model ids; omitted means every model of the target. */
    models: z.array(z.string()).optional(),
    popularity: z
      .union([z.object({ kind: z.literal("uniform") }).strict(), z.object({ kind: z.literal("zipf"), s: z.number().positive().default(1) }).strict()])
      .default({ kind: "uniform" }),
    inputTokens: lengthSchema.default(64),
    outputTokens: lengthSchema.default(32),
    /**
     * Tenants (API keys) sharing the load: each sends its own seeded arrival stream at its
     * `share` of the rate. `weight` is the simulator's fair-share weight (a server takes
     * the key's configured one); `key` is the bearer key `pitcher bench` sends for it.
     */
    tenants: z
      .array(z.object({ name: z.string().min(1), share: z.number().positive().default(1), weight: z.number().positive().default(1), key: z.string().min(1).optional() }).strict())
      .min(1)
      .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, "tenant names must differ")
      .optional(),
  })
  .strict();

export type WorkloadSpec = z.infer<typeof workloadSchema>;
export type LengthSpec = z.infer<typeof lengthSchema>;

export interface WorkloadRequest {
  index: number;
  modelId: string;
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  /** Whose request it is (the simulator's fair sharing); absent: the one default tenant. */
  tenant?: { id: string; weight: number };
}

function sampleLength(rng: Rng, spec: LengthSpec): number {
  if (typeof spec === "number") return spec;
  if ("uniform" in spec) return spec.uniform[0] + Math.floor(rng.next() * (spec.uniform[1] - spec.uniform[0] + 1));
  const sigma2 = Math.log(1 + spec.cv * spec.cv);
  const mu = Math.log(spec.mean) - sigma2 / 2;
  const u = 1 - rng.next();
  const v = rng.next();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.min(spec.max, Math.max(spec.min, Math.round(Math.exp(mu + Math.sqrt(sigma2) * z))));
}

/** Cumulative popularity weights over the models (Zipf: rank r gets 1 / r^s). */
export function popularityWeights(n: number, popularity: WorkloadSpec["popularity"]): number[] {
  const w = Array.from({ length: n }, (_, i) => (popularity.kind === "zipf" ? 1 / (i + 1) ** popularity.s : 1));
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

/**
 * The workload's requests. With tenants, each tenant's arrivals, models and lengths come
 * from its own seed (derived from the workload's and its name) at its share of the rate, so
 * a tenant's requests are the same whoever else sends; the streams are merged by arrival.
 */
export function generateWorkload(spec: WorkloadSpec, availableModels: string[]): WorkloadRequest[] {
  if (!spec.tenants) return generateStream(spec, availableModels);
  const total = spec.tenants.reduce((s, t) => s + t.share, 0);
  const merged = spec.tenants.flatMap((t) =>
    generateStream({ ...spec, seed: deriveSeed(spec.seed, `tenant:${t.name}`), ratePerSecond: (spec.ratePerSecond * t.share) / total }, availableModels).map((r) => ({
      ...r,
      tenant: { id: t.name, weight: t.weight },
    })),
  );
  merged.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return merged.map((r, index) => ({ ...r, index }));
}

function generateStream(spec: WorkloadSpec, availableModels: string[]): WorkloadRequest[] {
  const models = spec.models ?? availableModels;
  if (models.length === 0) throw new Error("workload: no models");
  for (const m of models) if (!availableModels.includes(m)) throw new Error(`workload: unknown model '${m}'`);
  const arrivalsRng = createRng(deriveSeed(spec.seed, "arrivals"));
  const modelRng = createRng(deriveSeed(spec.seed, "models"));
  const lengthRng = createRng(deriveSeed(spec.seed, "lengths"));
  const weights = popularityWeights(models.length, spec.popularity);
  const meanGapMs = 1000 / spec.ratePerSecond;
  const out: WorkloadRequest[] = [];
  let t = 0;
  for (let i = 0; ; i++) {
    const gap =
      spec.arrivals.kind === "poisson"
        ? sampleExponential(arrivalsRng, meanGapMs)
        : sampleGamma(arrivalsRng, 1 / (spec.arrivals.cv * spec.arrivals.cv), meanGapMs * spec.arrivals.cv * spec.arrivals.cv);
    t += gap;
    if (t >= spec.durationSeconds * 1000) break;
    let u = modelRng.next();
    let m = 0;
    while (m < weights.length - 1 && u >= weights[m]!) u -= weights[m++]!;
    out.push({ index: i, modelId: models[m]!, arrivalMs: t, inputTokens: sampleLength(lengthRng, spec.inputTokens), outputTokens: sampleLength(lengthRng, spec.outputTokens) });
  }
  return out;
}
