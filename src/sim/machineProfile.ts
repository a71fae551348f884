/**
 * A machine profile: what `pitcher profile` measured on real devices of this machine (step
 * times over batch sizes and context lengths, load, evict and KV swap times, for each model
 * of a serving catalog), the linear cost models fitted to those samples, and the server
 * settings they were measured under. `pitcher plan --profile` and `pitcher simulate
 * --profile` price commands with it, so the planner predicts this very machine.
 *
 * Fitted forms (ms):
 * - decode step of b sequences at mean context c: fixed + perSequence·b + perContextToken·b·c
 * - prefill chunk of n tokens after c earlier ones: fixed + perToken·n + perTokenContext·n·(c + n/2)
 * - KV swap (out or in) of t tokens: fixed + perToken·t
 */
import { z } from "zod";
import type { SloTargets } from "../core/types.ts";
import { DEFAULT_SCHEDULER_OPTIONS } from "../scheduler/Scheduler.ts";
import { median } from "../core/slo.ts";
import { fitNonNegative, medianRelativeError } from "./fit.ts";
import type { SimCosts } from "./SimCosts.ts";

const samples = z.array(z.array(z.number()));

const modelCostsSchema = z
  .object({
    id: z.string(),
    description: z.string().optional(),
    weightBytes: z.number().positive(),
    kvBytesPerToken: z.number().positive(),
    contextTokens: z.number().int().positive(),
    maxBatch: z.number().int().positive(),
    slo: z.object({ ttftMs: z.number().positive(), tbtMs: z.number().positive() }).strict(),
    loadMs: z.number().min(0),
    evictMs: z.number().min(0),
    decode: z.object({ fixedMs: z.number().min(0), perSequenceMs: z.number().min(0), perContextTokenMs: z.number().min(0), medianError: z.number() }).strict(),
    prefill: z.object({ fixedMs: z.number().min(0), perTokenMs: z.number().min(0), perTokenContextMs: z.number().min(0), medianError: z.number() }).strict(),
    kvSwap: z.object({ fixedMs: z.number().min(0), perTokenMs: z.number().min(0), medianError: z.number() }).strict(),
    /** The measurements: decode [batch, context, ms/step], prefill [tokens, context, ms], load [ms], evict [ms], kvSwap [tokens, out ms, in ms]. */
    samples: z.object({ decode: samples, prefill: samples, load: z.array(z.number()), evict: z.array(z.number()), kvSwap: samples }).strict(),
  })
  .strict();

export const machineProfileSchema = z
  .object({
    kind: z.literal("pitcher-machine-profile"),
    version: z.literal(1),
    id: z.string(),
    measuredAt: z.string(),
    host: z.object({ cpu: z.string(), cores: z.number().int(), memoryBytes: z.number() }).strict(),
    devices: z
      .object({ count: z.number().int().min(1), threadsPerDevice: z.number().int().min(1), gpu: z.union([z.string(), z.literal(false)]), memoryBytes: z.number().positive() })
      .strict(),
    /** The server's scheduler and engine settings the samples were taken under. */
    server: z
      .object({
        policy: z.string(),
        prefillChunkTokens: z.number().int().positive(),
        maxGroupSize: z.number().int().positive(),
        maxQuotaMs: z.number().positive(),
        admissionTtftFactor: z.number().min(0),
        maxBatch: z.number().int().positive(),
        contextTokens: z.number().int().positive(),
      })
      .strict(),
    models: z.array(modelCostsSchema).min(1),
    /**
     * Devices of one machine share cores and memory bandwidth: decode steps of one model
     * alone and while another device decodes without pause.
     */
    contention: z
      .object({ modelId: z.string(), busyDevices: z.number().int().min(2), soloStepMs: z.number().positive(), sharedStepMs: z.number().positive(), slowdown: z.number().min(1) })
      .strict()
      .optional(),
  })
  .strict();

export type MachineProfile = z.infer<typeof machineProfileSchema>;
export type ModelCosts = z.infer<typeof modelCostsSchema>;
export type ModelSamples = ModelCosts["samples"];

/** Fit a model's cost lines to its samples. */
export function fitModelCosts(s: ModelSamples): Pick<ModelCosts, "loadMs" | "evictMs" | "decode" | "prefill" | "kvSwap"> {
  const dx = s.decode.map(([b, c]) => [1, b!, b! * c!]);
  const dy = s.decode.map((r) => r[2]!);
  const [df, dp, dc] = fitNonNegative(dx, dy);
  const px = s.prefill.map(([n, c]) => [1, n!, n! * (c! + n! / 2)]);
  const py = s.prefill.map((r) => r[2]!);
  const [pf, pt, pc] = fitNonNegative(px, py);
  const kx = s.kvSwap.flatMap(([t]) => [
    [1, t!],
    [1, t!],
  ]);
  const ky = s.kvSwap.flatMap((r) => [r[1]!, r[2]!]);
  const [kf, kt] = fitNonNegative(kx, ky);
  const decode = (b: number, c: number) => df! + dp! * b + dc! * b * c;
  const prefill = (n: number, c: number) => pf! + pt! * n + pc! * n * (c + n / 2);
  return {
    loadMs: median(s.load),
    evictMs: median(s.evict),
    decode: {
      fixedMs: df!,
      perSequenceMs: dp!,
      perContextTokenMs: dc!,
      medianError: medianRelativeError(
        s.decode.map(([b, c]) => decode(b!, c!)),
        dy,
      ),
    },
    prefill: {
      fixedMs: pf!,
      perTokenMs: pt!,
      perTokenContextMs: pc!,
      medianError: medianRelativeError(
        s.prefill.map(([n, c]) => prefill(n!, c!)),
        py,
      ),
    },
    kvSwap: {
      fixedMs: kf!,
      perTokenMs: kt!,
      medianError: medianRelativeError(
        kx.map(([, t]) => kf! + kt! * t!),
        ky,
      ),
    },
  };
}

/** The simulator's costs from a machine profile: its devices, its models, its server settings. */
export function measuredCosts(p: MachineProfile): SimCosts {
  const models = new Map(p.models.map((m) => [m.id, m]));
  const get = (id: string) => {
    const m = models.get(id);
    if (!m) throw new Error(`model ${id} is not in machine profile ${p.id}`);
    return m;
  };
  const decode = (m: ModelCosts, b: number, c: number) => m.decode.fixedMs + m.decode.perSequenceMs * b + m.decode.perContextTokenMs * b * c;
  return {
    id: p.id,
    memoryBytes: p.devices.memoryBytes,
    modelIds: p.models.map((m) => m.id),
    profile(id, slo: SloTargets, maxBatch, contextTokens) {
      const m = get(id);
      return {
        id,
        weightBytes: m.weightBytes,
        kvBytesPerToken: m.kvBytesPerToken,
        contextTokens: Math.min(contextTokens, m.contextTokens),
        maxBatch: Math.min(maxBatch, m.maxBatch),
        slo,
        // What the server's start-up calibration would find: short prompt, batch of one.
        estimates: {
          decodeStepMs: decode(m, 1, 64),
          decodeExtraPerSequenceMs: m.decode.perSequenceMs + m.decode.perContextTokenMs * 64,
          prefillMsPerToken: m.prefill.perTokenMs + m.prefill.fixedMs / 32,
          loadMs: m.loadMs,
          unloadMs: m.evictMs,
          kvSwapMsPerToken: m.kvSwap.perTokenMs + m.kvSwap.fixedMs / 64,
        },
      };
    },
    loadMs: (id) => get(id).loadMs,
    evictMs: (id) => get(id).evictMs,
    prefillMs: (id, from, to) => {
      const m = get(id);
      const n = to - from;
      return m.prefill.fixedMs + m.prefill.perTokenMs * n + m.prefill.perTokenContextMs * n * (from + n / 2);
    },
    decodeStepMs: (id, b, c) => decode(get(id), b, c),
    kvSwapMs: (id, t) => get(id).kvSwap.fixedMs + get(id).kvSwap.perTokenMs * t,
    // Measured with two busy devices; in between and beyond, in proportion to the busy ones.
    ...(p.contention ? { contention: (busy: number) => 1 + ((p.contention!.slowdown - 1) * Math.max(0, busy - 1)) / (p.contention!.busyDevices - 1) } : {}),
    defaults: {
      maxBatch: p.server.maxBatch,
      contextTokens: p.server.contextTokens,
      scheduler: {
        prefillChunkTokens: p.server.prefillChunkTokens,
        maxGroupSize: p.server.maxGroupSize,
        maxQuotaMs: p.server.maxQuotaMs,
        admissionTtftFactor: p.server.admissionTtftFactor,
        // The server's decode slice, not the GPU simulator's longer one.
        decodeSliceMs: DEFAULT_SCHEDULER_OPTIONS.decodeSliceMs,
      },
    },
  };
}
