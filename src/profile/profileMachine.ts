/**
 * `pitcher profile`: measure each model of a serving catalog on a real device of this
 * machine, through the same device port the server uses, and fit the machine
 * profile the planner prices commands with (../sim/machineProfile.ts). Times are wall time
 * as the server sees them (worker round trip included). The device should know no end
 * tokens, so that a profiled decode never stops early.
 *
 * Per model: cold and warm loads and evictions; prefill chunks over prompt sizes and
 * context offsets; decode steps over batch sizes and context lengths; KV swaps out and in
 * over lengths.
 */
import os from "node:os";
import type { DevicePort, DeviceResult } from "../core/devicePort.ts";
import type { ServedModel } from "../core/servedModel.ts";
import { median } from "../core/slo.ts";
import { PROGRESS_EVERY_MS } from "../runtime/runCommand.ts";
import { fitModelCosts, type MachineProfile, type ModelCosts, type ModelSamples } from "../sim/machineProfile.ts";

export interface ProfileOptions {
  prefillChunkTokens: number;
  /** Repetitions of each decode and swap measurement (median kept). */
  repeats: number;
  onStep?: (modelId: string, what: string) => void;
}

/** Prompt tokens any vocabulary accepts: spread over the ids, never 0. */
function tokensOf(m: ServedModel, n: number, salt: number): number[] {
  const v = Math.max(2, m.vocabularySize - 1);
  return Array.from({ length: n }, (_, i) => 1 + ((i * 7919 + salt * 104729) % v));
}

/** Wall time of one device call, as the server sees it. */
async function timed(call: () => Promise<DeviceResult>): Promise<{ ms: number; result: DeviceResult }> {
  const t0 = performance.now();
  const result = await call();
  return { ms: performance.now() - t0, result };
}

export async function profileModel(device: DevicePort, m: ServedModel, o: ProfileOptions): Promise<ModelSamples> {
  const greedy = { temperature: 0 };
  const C = m.profile.contextTokens;
  const B = m.profile.maxBatch;
  const chunk = o.prefillChunkTokens;
  const load = () => device.load(m.id, [], []);
  const s: ModelSamples = { decode: [], prefill: [], load: [], evict: [], kvSwap: [] };
  let seq = 0;

  o.onStep?.(m.id, "load");
  await timed(load); // cold: from disk into the page cache
  for (let i = 0; i < 3; i++) {
    s.evict.push((await timed(() => device.evict([m.id], []))).ms);
    s.load.push((await timed(load)).ms);
  }

  /** Prefill a fresh request to `tokens` in chunks of `step`, recording each chunk; returns its id and last token. */
  const prefill = async (tokens: number, step: number, record: boolean) => {
    const id = `profile-${m.id}-${seq++}`;
    const prompt = tokensOf(m, tokens, seq);
    let last = 0;
    for (let from = 0; from < tokens; from += step) {
      const to = Math.min(tokens, from + step);
      const final = to === tokens;
      const r = await timed(() => device.prefill({ modelId: m.id, requestId: id, tokens: prompt.slice(from, to), final, sampling: greedy }, []));
      if (record) s.prefill.push([to - from, from, r.ms]);
      if (final) last = r.result.first!.token;
    }
    return { id, last, tokens };
  };
  const release = (ids: string[]) => device.release(ids);

  o.onStep?.(m.id, "prefill");
  const lengths = [...new Set([Math.min(C - 16, Math.floor((3 * C) / 4)), 256, 64].filter((n) => n > 0 && n < C))];
  for (const n of lengths) {
    const r = await prefill(n, chunk, true);
    await release([r.id]);
  }
  for (const n of [8, Math.max(1, Math.floor(chunk / 4))]) {
    const r = await prefill(Math.min(n * 8, C - 16), n, true);
    await release([r.id]);
  }

  o.onStep?.(m.id, "decode");
  const batches = [...new Set([1, 2, B].filter((b) => b <= B))];
  const contexts = [...new Set([32, Math.floor(C / 4), Math.floor(C / 2)].filter((c) => c + 16 < C))];
  const steps = 8;
  for (const b of batches)
    for (const c of contexts) {
      const reqs = [];
      for (let i = 0; i < b; i++) reqs.push(await prefill(c, chunk, false));
      const perStep: number[] = [];
      for (let k = 0; k < o.repeats; k++) {
        const items = reqs.map((q) => ({ requestId: q.id, token: q.last, tokenIndex: 1 + k * steps, sampling: greedy }));
        const lastOf = new Map<string, number>();
        const r = await timed(() =>
          device.decode({ modelId: m.id, steps, progressEveryMs: PROGRESS_EVERY_MS, items }, [], (tokens) => {
            for (const t of tokens) lastOf.set(t.requestId, t.token);
          }),
        );
        perStep.push(r.ms / (r.result.steps ?? steps));
        for (const q of reqs) q.last = lastOf.get(q.id) ?? q.last;
      }
      s.decode.push([b, c + (steps * o.repeats) / 2, median(perStep)]);
      await release(reqs.map((q) => q.id));
    }

  o.onStep?.(m.id, "KV swap");
  for (const t of contexts) {
    const r = await prefill(t, chunk, false);
    const outs: number[] = [];
    const ins: number[] = [];
    for (let k = 0; k < o.repeats; k++) {
      outs.push((await timed(() => device.swapOut(m.id, [r.id], []))).ms);
      ins.push((await timed(() => device.swapIn(m.id, [r.id], []))).ms);
    }
    s.kvSwap.push([t, median(outs), median(ins)]);
    await release([r.id]);
  }
  await device.evict([m.id], []);
  return s;
}

/**
 * Devices of one machine share its cores and memory bandwidth. Decode on `a` alone, then
 * again while `b` decodes the same model without pause: the ratio is how much slower a
 * device runs when its neighbours are busy.
 */
export async function measureContention(a: DevicePort, b: DevicePort, m: ServedModel, o: ProfileOptions): Promise<NonNullable<MachineProfile["contention"]>> {
  const greedy = { temperature: 0 };
  const ready = async (d: DevicePort, id: string) => {
    await d.load(m.id, [], []);
    const r = await d.prefill({ modelId: m.id, requestId: id, tokens: tokensOf(m, 32, 1), final: true, sampling: greedy }, []);
    return r.first!.token;
  };
  const tokA = await ready(a, "contention-a");
  const tokB = await ready(b, "contention-b");
  const steps = 16;
  const run = async (d: DevicePort, id: string, token: number, index: number) => {
    const t0 = performance.now();
    const r = await d.decode({ modelId: m.id, steps, progressEveryMs: PROGRESS_EVERY_MS, items: [{ requestId: id, token, tokenIndex: index, sampling: greedy }] }, [], () => {});
    return (performance.now() - t0) / (r.steps ?? steps);
  };
  // Alone and shared in alternating rounds, each shared round against the solo round just
  // before it: a machine whose speed drifts during the probe (a shared VM) then moves both
  // sides of a ratio, not one block of samples.
  const solo: number[] = [];
  const ratios: number[] = [];
  let index = 1;
  let bIndex = 1;
  for (let k = 0; k < 2 * (o.repeats + 1); k++) {
    const alone = await run(a, "contention-a", tokA, index);
    index += steps;
    let busy = true;
    const neighbour = (async () => {
      for (let j = 0; busy && j < 10_000; j++, bIndex += steps) await run(b, "contention-b", tokB, bIndex);
    })();
    // Let b get under way before timing a.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const shared = await run(a, "contention-a", tokA, index);
    index += steps;
    busy = false;
    await neighbour;
    solo.push(alone);
    ratios.push(shared / alone);
  }
  for (const [d, id] of [
    [a, "contention-a"],
    [b, "contention-b"],
  ] as const) {
    await d.release([id]);
    await d.evict([m.id], []);
  }
  const soloMs = median(solo);
  const slowdown = Math.max(1, median(ratios));
  return { modelId: m.id, busyDevices: 2, soloStepMs: soloMs, sharedStepMs: soloMs * slowdown, slowdown };
}

export interface MachineSettings {
  id: string;
  devices: MachineProfile["devices"];
  server: MachineProfile["server"];
}

export async function profileMachine(
  device: DevicePort,
  models: ServedModel[],
  settings: MachineSettings,
  o: ProfileOptions,
  /** A second device of the machine, to measure how devices slow each other down. */
  neighbour?: DevicePort,
): Promise<MachineProfile> {
  const out: ModelCosts[] = [];
  for (const m of models) {
    const samples = await profileModel(device, m, o);
    out.push({
      id: m.id,
      ...(m.description ? { description: m.description } : {}),
      weightBytes: m.profile.weightBytes,
      kvBytesPerToken: m.profile.kvBytesPerToken,
      contextTokens: m.profile.contextTokens,
      maxBatch: m.profile.maxBatch,
      slo: m.profile.slo,
      ...fitModelCosts(samples),
      samples: roundSamples(samples),
    });
  }
  let contention: MachineProfile["contention"];
  if (neighbour && models.length > 0) {
    // The largest model: the one that leans hardest on the shared memory bandwidth.
    const biggest = models.reduce((x, y) => (y.profile.weightBytes > x.profile.weightBytes ? y : x));
    o.onStep?.(biggest.id, "contention");
    contention = await measureContention(device, neighbour, biggest, o);
  }
  return {
    kind: "pitcher-machine-profile",
    version: 1,
    id: settings.id,
    measuredAt: new Date().toISOString(),
    host: { cpu: os.cpus()[0]?.model ?? "unknown", cores: os.availableParallelism(), memoryBytes: os.totalmem() },
    devices: settings.devices,
    server: settings.server,
    models: out,
    ...(contention ? { contention } : {}),
  };
}

function roundSamples(s: ModelSamples): ModelSamples {
  const r = (rows: number[][]) => rows.map((row) => row.map((x) => Math.round(x * 1000) / 1000));
  return {
    decode: r(s.decode),
    prefill: r(s.prefill),
    load: s.load.map((x) => Math.round(x * 1000) / 1000),
    evict: s.evict.map((x) => Math.round(x * 1000) / 1000),
    kvSwap: r(s.kvSwap),
  };
}
