/**
 * Composition root of `pitcher profile`: the serving config's models, measured on one real
 * device worker of this machine, written as a machine profile for `pitcher plan --profile`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import cliProgress from "cli-progress";
import { loadConfig } from "../config/loadConfig.ts";
import { parseByteSize, type PitcherConfig } from "../config/schema.ts";
import { EngineDevice } from "../engine/EngineDevice.ts";
import { HostKvTier } from "../engine/HostKvTier.ts";
import { resolveModels } from "../engine/resolveModels.ts";
import { profileMachine } from "../profile/profileMachine.ts";
import type { MachineProfile } from "../sim/machineProfile.ts";

export interface ProfileArgs {
  configFile?: string;
  config?: PitcherConfig;
  out: string;
  /** Only these models of the catalog. */
  models?: string[];
  repeats: number;
  progress: boolean;
  log?: (msg: string) => void;
}

export async function runProfile(a: ProfileArgs): Promise<MachineProfile> {
  const log = a.log ?? ((m: string) => console.error(m));
  const { config, baseDir } = a.config ? { config: a.config, baseDir: process.cwd() } : loadConfig(a.configFile);
  let models = await resolveModels(config, baseDir, log);
  if (a.models) {
    const unknown = a.models.filter((id) => !models.some((m) => m.id === id));
    if (unknown.length) throw new Error(`--models: not in the catalog: ${unknown.join(", ")} (catalog: ${models.map((m) => m.id).join(", ")})`);
    models = models.filter((m) => a.models!.includes(m.id));
  }
  // The profile prices generation (decode, KV swaps); an embedding model only prefills.
  const embedders = models.filter((m) => m.embedding).map((m) => m.id);
  if (embedders.length) log(`not profiled (embedding models): ${embedders.join(", ")}`);
  models = models.filter((m) => !m.embedding);
  if (models.length === 0) throw new Error("no model to profile: every model of the catalog is an embedding model");
  const threads = config.devices.threadsPerDevice;
  const count = config.devices.count ?? Math.max(1, Math.floor(os.availableParallelism() / threads));
  const hostKv = HostKvTier.temporary("pitcher-profile-");
  // No end tokens: a profiled decode runs every step it is asked for.
  const options = { threads, gpu: config.devices.gpu, hostKv, models, prefillChunkTokens: config.scheduler.prefillChunkTokens };
  const device = new EngineDevice("profile", options);
  const neighbour = count > 1 ? new EngineDevice("profile-2", options) : undefined;
  const bar = a.progress ? new cliProgress.SingleBar({ format: "profiling [{bar}] {value}/{total} models · {model}: {what}" }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(models.length, 0, { model: "", what: "" });
  let done = 0;
  let current = "";
  try {
    await device.start();
    await neighbour?.start();
    const profile = await profileMachine(
      device,
      models,
      {
        id: `${os.hostname()}-${count}x${threads}t`,
        devices: { count, threadsPerDevice: threads, gpu: config.devices.gpu, memoryBytes: parseByteSize(config.devices.memory) },
        server: {
          policy: config.scheduler.policy,
          prefillChunkTokens: config.scheduler.prefillChunkTokens,
          maxGroupSize: config.scheduler.maxGroupSize,
          maxQuotaMs: config.scheduler.maxQuotaMs,
          admissionTtftFactor: config.scheduler.admissionTtftFactor,
          maxBatch: config.defaults.maxBatch,
          contextTokens: config.defaults.contextTokens,
        },
      },
      {
        prefillChunkTokens: config.scheduler.prefillChunkTokens,
        repeats: a.repeats,
        onStep: (model, what) => {
          if (current && model !== current && done < models.length) bar?.update(++done);
          current = model;
          bar?.update(done, { model, what });
        },
      },
      neighbour,
    );
    bar?.update(models.length, { model: "", what: "done" });
    fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(profile, null, 1) + "\n");
    return profile;
  } finally {
    bar?.stop();
    await device.stop();
    await neighbour?.stop();
    hostKv.close();
  }
}

export function formatProfileTable(p: MachineProfile): string {
  const head = ["model", "load ms", "decode ms/step (b=1, +/seq)", "prefill ms/token", "KV swap ms (+/token)", "fit error decode / prefill / swap"];
  const rows = p.models.map((m) => [
    m.id,
    m.loadMs.toFixed(1),
    `${(m.decode.fixedMs + m.decode.perSequenceMs).toFixed(2)} (+${m.decode.perSequenceMs.toFixed(2)})`,
    m.prefill.perTokenMs.toFixed(3),
    `${m.kvSwap.fixedMs.toFixed(2)} (+${m.kvSwap.perTokenMs.toFixed(4)})`,
    [m.decode.medianError, m.prefill.medianError, m.kvSwap.medianError].map((e) => `${(e * 100).toFixed(1)}%`).join(" / "),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join("  ");
  const c = p.contention;
  return [
    `machine ${p.id}: ${p.devices.count} device(s) × ${p.devices.threadsPerDevice} thread(s), ${(p.devices.memoryBytes / 1e6).toFixed(0)} MB each`,
    line(head),
    ...rows.map(line),
    ...(c
      ? [
          `contention: ${c.modelId} decodes at ${c.soloStepMs.toFixed(2)} ms/step alone, ${c.sharedStepMs.toFixed(2)} ms/step with ${c.busyDevices - 1} other device busy (×${c.slowdown.toFixed(2)})`,
        ]
      : []),
  ].join("\n");
}
